"""The `real` sample style: words on photographs at the sizes a phone sees them.

Each shot is a photograph the camera pans across; signs and words painted on walls
drift over it, set in TrueType fonts, 8-40 px tall (log-uniform: most words are small),
in perspective; some are partly hidden behind a pole. Frames get motion blur, sensor
noise and JPEG artefacts. Shots are separated by stretches with no text.

Photographs: `$OFFLOAD_PHOTOS` (a folder of JPEG/PNG files, or a wheel/zip holding
them), else scikit-image's bundled pictures read straight out of its wheel in the
checkout's `.cache/wheels` (`make models` downloads it; it is never installed), else
matplotlib's one sample photograph. Fonts are matplotlib's DejaVu and STIX families.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from offload_core.engine.repository import CHECKOUT
from offload_tools.sample import FrameTruth, GroundTruth, Sign, place_signs

# scikit-image's photographs without lettering of their own (`text`, `page` and `logo` have some).
SKIMAGE_PHOTOS = [
    "astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel", "motorcycle_left", "rocket",
]  # fmt: skip
FONT_FILES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
]  # fmt: skip
# What signs and shop fronts say: capitals, mixed case, digits and a little punctuation.
WORDS = [
    "STOP", "EXIT", "Open", "HOTEL", "Parking", "Coffee", "BAKERY", "Taxi", "Pharmacy", "BOOKS", "Museum",
    "PIZZA", "Bank", "MARKET", "School", "GARDEN", "Police", "CINEMA", "Sale", "STATION", "Library", "Bus",
    "TICKETS", "fresh", "Hospital", "BRIDGE", "metro", "Closed", "Bistro", "TOWER", "Gate", "Platform",
    "Route66", "24h", "$4.99", "B12", "Exit3", "Kiosk", "Dental", "Laundry", "Salon", "Pasta", "GYM", "Hostel",
    "Airport", "Ferry", "Street", "Avenue", "Garage", "Florist", "Sushi", "Tacos", "Bar", "Deli", "Rooms",
    "Welcome", "Tram", "Post", "Wifi", "Menu", "Toilets", "Info", "Zone", "North", "South", "Lane", "Plaza",
]  # fmt: skip
MIN_TEXT_PX, MAX_TEXT_PX = 8.0, 40.0  # the height of a capital letter in the frame


def _decode(data: bytes) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and min(image.shape[:2]) >= 256 else None


def _from_archive(path: Path) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith((".png", ".jpg", ".jpeg"))]
        if any(n.startswith("skimage/data/") for n in names):
            names = [n for n in names if Path(n).stem in SKIMAGE_PHOTOS and n.startswith("skimage/data/")]
        images = [_decode(archive.read(n)) for n in sorted(names)]
    return [i for i in images if i is not None]


def _from_folder(path: Path) -> list[np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [_decode(p.read_bytes()) for p in files]
    return [i for i in images if i is not None]


def _matplotlib_data() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise RuntimeError("the real sample needs matplotlib's fonts: pip install 'offload-client[cli]'")
    return Path(spec.origin).parent / "mpl-data"


def photo_source() -> Path:
    """Where the photographs come from (see the module docstring for the order)."""
    if env := os.environ.get("OFFLOAD_PHOTOS"):
        return Path(env).expanduser()
    if CHECKOUT is not None:
        wheels = sorted((CHECKOUT / ".cache" / "wheels").glob("scikit_image-*.whl"))
        if wheels:
            return wheels[-1]
    return _matplotlib_data() / "sample_data"


@functools.cache
def photographs(source: Path) -> list[np.ndarray]:
    """BGR photographs from a folder or a wheel/zip (smaller than 256 px a side: skipped)."""
    images = _from_archive(source) if source.is_file() else _from_folder(source) if source.is_dir() else []
    if not images:
        raise RuntimeError(f"no photographs (JPEG/PNG, 256 px or more a side) in {source}; set OFFLOAD_PHOTOS")
    return images


@functools.cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_matplotlib_data() / "fonts" / "ttf" / name), size)


def _render_word(rng: np.random.Generator, word: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A sign (BGR patch, text rectangle inside it, alpha or None for an opaque plate)."""
    cap_px = float(np.exp(rng.uniform(np.log(MIN_TEXT_PX), np.log(MAX_TEXT_PX))))
    font = _font(FONT_FILES[int(rng.integers(len(FONT_FILES)))], max(8, round(cap_px / 0.73)))
    x0, y0, x1, y1 = (int(v) for v in font.getbbox(word))
    pad = max(3, int(cap_px * 0.5))
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    dark_on_light = rng.random() < 0.55
    plate = rng.integers(170, 250, 3) if dark_on_light else rng.integers(10, 90, 3)
    ink = rng.integers(0, 70, 3) if dark_on_light else rng.integers(190, 256, 3)
    painted = rng.random() < 0.25  # straight on the wall: only the ink (and its outline, as on a sticker) shows
    outline = max(1, round(cap_px / 12)) if painted else 0
    image = Image.new("RGB", (w, h), tuple(int(c) for c in plate))
    ink_mask = Image.new("L", (w, h), 0)
    at, fill, edge = (pad - x0, pad - y0), tuple(int(c) for c in ink), tuple(int(c) for c in plate)
    ImageDraw.Draw(image).text(at, word, font=font, fill=fill, stroke_width=outline, stroke_fill=edge)
    ImageDraw.Draw(ink_mask).text(at, word, font=font, fill=255, stroke_width=outline, stroke_fill=255)
    patch = np.asarray(image)[..., ::-1].copy()
    m = max(1.0, cap_px * 0.12)  # annotators' margin around the ink
    rect = np.array([[pad - m, pad - m], [w - pad + m, pad - m], [w - pad + m, h - pad + m], [pad - m, h - pad + m]])
    alpha = np.asarray(ink_mask).copy() if painted else None
    if not painted and rng.random() < 0.2:  # a pole or a branch in front of part of the sign
        bar = max(2, int(cap_px * rng.uniform(0.15, 0.35)))
        x = int(rng.uniform(pad, w - pad - bar))
        patch[:, x : x + bar] = rng.integers(20, 120, 3).astype(np.uint8)
    return patch, rect.astype(np.float32), alpha


def _signs(rng: np.random.Generator, frames: int, width: int, height: int) -> tuple[list[Sign], list[tuple[int, int]]]:
    """The signs, and the shots: (first frame, photograph index) in order."""
    signs: list[Sign] = []
    shots: list[tuple[int, int]] = []
    t = 0
    while t < frames:
        life = int(rng.integers(20, 40))
        shots.append((t, int(rng.integers(1 << 30))))
        for _ in range(int(rng.integers(2, 7))):
            word = WORDS[int(rng.integers(len(WORDS)))]
            patch, rect, alpha = _render_word(rng, word)
            ph, pw = patch.shape[:2]
            if pw >= width - 24 or ph >= height - 24:
                continue
            origin = np.array([rng.uniform(10, width - pw - 10), rng.uniform(10, height - ph - 10)], np.float32)
            velocity = np.array([rng.uniform(-2.0, 2.0), rng.uniform(-0.5, 0.5)], np.float32)
            skew = rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.array([pw, ph], np.float32)
            start = t + int(rng.integers(0, 5))
            signs.append(Sign(word, patch, rect, start, min(frames, t + life), origin, velocity, skew, alpha))
        t += life
        if rng.random() < 0.6:  # a stretch without text before the next shot
            shots.append((t, -1 - int(rng.integers(1 << 30))))
            t += int(rng.integers(4, 10))
    return signs, shots


def _backdrop(photo: np.ndarray, width: int, height: int, pan: float) -> np.ndarray:
    """A width×height window on the photograph, scaled to cover 1.3× the frame, slid by `pan` in [0, 1]."""
    scale = 1.3 * max(width / photo.shape[1], height / photo.shape[0])
    big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    x = int((big.shape[1] - width) * pan)
    y = int((big.shape[0] - height) * 0.5 * (1 - pan))
    return big[y : y + height, x : x + width].copy()


def _camera(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
    """What the phone's camera and encoder add: motion blur now and then, noise, JPEG artefacts."""
    if rng.random() < 0.2:
        length = int(rng.integers(3, 8))
        line = np.zeros((length, length), np.float32)
        line[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
        kernel = np.asarray(cv2.warpAffine(line, rotation, (length, length)), dtype=np.float32)
        frame = cv2.filter2D(frame, -1, kernel / np.float32(max(float(kernel.sum()), 1e-6)))
    noise = rng.normal(0, rng.uniform(2, 6), frame.shape).astype(np.float32)
    frame = (frame.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    quality = int(rng.integers(40, 90))
    _, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return frame if decoded is None else decoded


def render_photo_frames(seed: int, frames: int, width: int, height: int) -> tuple[list[np.ndarray], GroundTruth]:
    """The `real` style's BGR frames and ground truth (`render_frames(..., style="real")` calls this)."""
    rng = np.random.default_rng(seed)
    photos = photographs(photo_source())
    signs, shots = _signs(rng, frames, width, height)
    images: list[np.ndarray] = []
    truth: list[FrameTruth] = []
    for k, (first, pick) in enumerate(shots):
        last = shots[k + 1][0] if k + 1 < len(shots) else frames
        photo = photos[abs(pick) % len(photos)]
        for i in range(first, min(last, frames)):
            frame = _backdrop(photo, width, height, (i - first) / max(1, last - first) * 0.5 + (pick % 2) * 0.25)
            words = place_signs(frame, signs, i) if pick >= 0 else []
            images.append(_camera(rng, frame))
            truth.append(FrameTruth(index=i, words=words))
    return images, GroundTruth(seed=seed, style="real", fps=10.0, width=width, height=height, frames=truth)
