"""The sample video and its ground truth: moving signs with known words.

Two styles share the placement of signs and the ground truth. `street` (the default): a
synthetic street of flat buildings, Hershey fonts, words 10-40 px tall. `real`
(`sample_photo.py`): photographs as backgrounds, TrueType fonts, words down to 8 px,
JPEG artefacts, occluders; this is what a phone sees. Both have stretches with no text.
Everything follows from the seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel

# The sample video `offload run --sample` renders (the demo's and the docs' figures use it).
SAMPLE_SEED = 7
SAMPLE_FRAMES = 100
Style = Literal["street", "real", "faces", "pan"]
STYLES: tuple[Style, ...] = ("street", "real", "faces", "pan")
# Each style's frame size when none is asked for: the street scene is 16:9, the photo style a phone's 4:3 VGA.
DEFAULT_SIZE: dict[Style, tuple[int, int]] = {
    "street": (640, 360), "real": (640, 480), "faces": (640, 480), "pan": (640, 480)
}  # fmt: skip
WORDS = [
    "STOP", "EXIT", "OPEN", "HOTEL", "PARKING", "Coffee", "Bakery", "TAXI", "PHARMACY", "Books",
    "MUSEUM", "Pizza", "BANK", "Market", "SCHOOL", "Garden", "POLICE", "Cinema", "SALE", "Station",
    "Library", "BUS", "Tickets", "Fresh", "HOSPITAL", "Bridge", "Metro", "CLOSED", "Bistro", "Tower",
]  # fmt: skip
FONTS = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX]


class WordTruth(BaseModel):
    text: str
    quad: list[tuple[float, float]]


class FrameTruth(BaseModel):
    index: int
    words: list[WordTruth]


class GroundTruth(BaseModel):
    seed: int
    style: Style = "street"
    fps: float
    width: int
    height: int
    frames: list[FrameTruth]


@dataclass
class Sign:
    word: str
    patch: np.ndarray  # the sign, upright
    text_rect: np.ndarray  # 4x2 corners of the text inside the patch
    start: int
    end: int
    origin: np.ndarray  # top-left position at `start`
    velocity: np.ndarray  # pixels per frame
    skew: np.ndarray  # 4x2 corner offsets: the perspective
    alpha: np.ndarray | None = None  # where the sign is opaque (None: everywhere); words painted on a wall have none


def _render_sign(rng: np.random.Generator, word: str, small: bool) -> tuple[np.ndarray, np.ndarray]:
    font = FONTS[int(rng.integers(len(FONTS)))]
    scale = float(rng.uniform(0.55, 0.75) if small else rng.uniform(0.9, 1.8))
    thickness = 1 if small else int(rng.integers(2, 4))
    (tw, th), base = cv2.getTextSize(word, font, scale, thickness)
    pad = int(th * 0.6) + 4
    w, h = tw + 2 * pad, th + base + 2 * pad
    dark_on_light = rng.random() < 0.6
    bg = rng.integers(190, 250, 3) if dark_on_light else rng.integers(10, 80, 3)
    fg = rng.integers(0, 60, 3) if dark_on_light else rng.integers(200, 256, 3)
    patch = np.empty((h, w, 3), dtype=np.uint8)
    patch[:] = bg.astype(np.uint8)
    cv2.rectangle(patch, (1, 1), (w - 2, h - 2), tuple(int(c) for c in fg), 1)
    cv2.putText(patch, word, (pad, pad + th), font, scale, tuple(int(c) for c in fg), thickness, cv2.LINE_AA)
    # The labelled extent is the ink plus a small margin, as annotators draw it.
    m = max(2, int(th * 0.15))
    x0, y0, x1, y1 = pad - m, pad - m, pad + tw + m, pad + th + base // 2 + m
    rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return patch, rect


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    sky = np.linspace(140, 60, height, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(sky, (height, width, 3)).copy()
    bg += rng.normal(0, 6, (1, 1, 3)).astype(np.float32)
    for _ in range(14):  # buildings
        x = int(rng.integers(-40, width))
        w = int(rng.integers(40, 160))
        top = int(rng.integers(height // 5, height // 2))
        color = rng.integers(50, 170, 3).astype(np.float32)
        bg[top:, max(x, 0) : max(0, x + w)] = color
        for wy in range(top + 10, height - 20, 28):  # windows
            for wx in range(x + 8, x + w - 12, 22):
                if 0 <= wx < width - 10 and rng.random() < 0.7:
                    bg[wy : wy + 12, wx : wx + 10] = color * 0.55
    bg += rng.normal(0, 8, bg.shape).astype(np.float32)
    return bg.clip(0, 255).astype(np.uint8)


def _make_signs(rng: np.random.Generator, frames: int, width: int, height: int) -> list[Sign]:
    signs: list[Sign] = []
    # Quiet stretches with no text: one in every ~50 frames of ~6 frames.
    t = 0
    while t < frames:
        n = int(rng.integers(2, 5))
        life = int(rng.integers(25, 45))
        for _ in range(n):
            word = WORDS[int(rng.integers(len(WORDS)))]
            small = rng.random() < 0.3
            patch, rect = _render_sign(rng, word, small)
            ph, pw = patch.shape[:2]
            if pw >= width - 20:
                continue
            origin = np.array([rng.uniform(10, width - pw - 10), rng.uniform(10, height - ph - 10)], dtype=np.float32)
            velocity = np.array([rng.uniform(-2.5, 2.5), rng.uniform(-0.6, 0.6)], dtype=np.float32)
            skew = rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * np.array([pw, ph], dtype=np.float32)
            start = t + int(rng.integers(0, 5))
            signs.append(Sign(word, patch, rect, start, min(frames, t + life), origin, velocity, skew))
        t += life + (int(rng.integers(4, 8)) if rng.random() < 0.5 else 0)
    return signs


def _overlaps(a: np.ndarray, others: list[np.ndarray]) -> bool:
    ax0, ay0 = a.min(axis=0)
    ax1, ay1 = a.max(axis=0)
    for b in others:
        bx0, by0 = b.min(axis=0)
        bx1, by1 = b.max(axis=0)
        if ax0 < bx1 + 4 and bx0 < ax1 + 4 and ay0 < by1 + 4 and by0 < ay1 + 4:
            return True
    return False


def place_signs(frame: np.ndarray, signs: list[Sign], i: int) -> list[WordTruth]:
    """Paint the signs alive at frame `i` onto `frame` (in place); their words' ground truth.

    A sign that would leave the frame or overlap one already placed is skipped for that frame.
    """
    height, width = frame.shape[:2]
    placed: list[np.ndarray] = []
    words: list[WordTruth] = []
    for s in signs:
        if not s.start <= i < s.end:
            continue
        ph, pw = s.patch.shape[:2]
        top_left = s.origin + s.velocity * (i - s.start)
        src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32)
        dst = src + top_left + s.skew
        if dst[:, 0].min() < 2 or dst[:, 1].min() < 2 or dst[:, 0].max() > width - 2 or dst[:, 1].max() > height - 2:
            continue
        if _overlaps(dst, placed):
            continue
        placed.append(dst)
        matrix = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(s.patch, matrix, (width, height))
        if s.alpha is None:  # an opaque sign: pasted with a hard edge
            mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), matrix, (width, height))
            frame[mask > 127] = warped[mask > 127]
        else:  # ink on a wall: blended through its anti-aliased alpha
            weight = cv2.warpPerspective(s.alpha, matrix, (width, height)).astype(np.float32)[..., None] / 255.0
            frame[:] = (frame * (1.0 - weight) + warped * weight).round().astype(np.uint8)
        quad = cv2.perspectiveTransform(s.text_rect.reshape(1, -1, 2), matrix).reshape(4, 2)
        words.append(WordTruth(text=s.word, quad=[(float(x), float(y)) for x, y in quad]))
    return words


def render_frames(
    seed: int, frames: int, width: int | None = None, height: int | None = None, style: Style = "street"
) -> tuple[list[np.ndarray], GroundTruth]:
    """Render the sample in memory: BGR frames and their ground truth.

    >>> images, truth = render_frames(seed=1, frames=3)
    >>> images[0].shape, len(truth.frames)
    ((360, 640, 3), 3)
    """
    width = width or DEFAULT_SIZE[style][0]
    height = height or DEFAULT_SIZE[style][1]
    if style == "real":
        from offload_tools.sample_photo import render_photo_frames  # Pillow and fonts: the cli extra

        return render_photo_frames(seed, frames, width, height)
    if style == "pan":  # a hand-held camera over a wall of signs, at 15 fps: continuous mode's sample
        from offload_tools.sample_pan import render_pan_frames

        return render_pan_frames(seed, frames, width, height)
    if style == "faces":  # the face detector's sample: its truth is the faces (text ""), not the words
        from offload_tools.faces import face_frames

        pasted, street = face_frames(seed, frames, width, height)
        rects = [[WordTruth(text="", quad=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)]) for x1, y1, x2, y2 in f.faces]
                 for f in pasted]  # fmt: skip
        faces = [FrameTruth(index=i, words=words) for i, words in enumerate(rects)]
        return [f.image for f in pasted], street.model_copy(update={"style": "faces", "frames": faces})
    rng = np.random.default_rng(seed)
    background = _background(rng, width, height)
    signs = _make_signs(rng, frames, width, height)
    images: list[np.ndarray] = []
    truth: list[FrameTruth] = []
    for i in range(frames):
        frame = background.copy()
        # Background drift, as a camera panning slowly.
        frame = np.roll(frame, -(i // 2) % width, axis=1)
        words = place_signs(frame, signs, i)
        if i % 7 == 3:  # motion blur now and then
            kernel = np.zeros((1, 5), np.float32)
            kernel[0, :] = 1 / 5
            frame = cv2.filter2D(frame, -1, kernel)
        noise = rng.normal(0, 4, frame.shape).astype(np.float32)
        frame = (frame.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
        images.append(frame)
        truth.append(FrameTruth(index=i, words=words))
    return images, GroundTruth(seed=seed, fps=10.0, width=width, height=height, frames=truth)


def write_sample_video(out_dir: Path, seed: int = 0, frames: int = 100, style: Style = "street") -> tuple[Path, Path]:
    """Write `sample.avi` (Motion-JPEG, which every OpenCV build reads) and `ground_truth.json`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images, truth = render_frames(seed, frames, style=style)
    video = out_dir / "sample.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), truth.fps, (truth.width, truth.height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {video}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for image in images:
        writer.write(image)
    writer.release()
    gt = out_dir / "ground_truth.json"
    gt.write_text(truth.model_dump_json(indent=1))
    return video, gt


def load_ground_truth(path: Path) -> GroundTruth:
    return GroundTruth.model_validate(json.loads(path.read_text()))
