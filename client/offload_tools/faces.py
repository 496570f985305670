"""Frames with real faces in them, and where each face is: the test and benchmark data of privacy `redact`.

The faces are every face photograph scikit-image ships (read out of its wheel, which `make models`
keeps in `.cache/wheels`; it is never installed): the astronaut (frontal), the cameraman (in profile,
behind a camera) and the 100 faces of its Labeled-Faces-in-the-Wild subset (25x25 px, grey; each is
a different person). Each is pasted into street frames with text at a face size from 25 to 200 px,
mirrored or not, rotated up to ±20°, one to three per frame, sometimes cut by the frame's edge.
The same seed gives the same frames: tune on one seed, confirm on another. Privacy `redact` is
tested on them, and they are the face detector's sample with ground truth (`face-detector`).

Example:
    >>> frames = face_frames(seed=1, count=4)         # doctest: +SKIP
    >>> frames[0].image.shape, frames[0].faces[0]      # doctest: +SKIP
    ((480, 640, 3), (412, 96, 507, 214))
"""

from __future__ import annotations

import functools
import glob
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from offload_tools.sample import GroundTruth, render_frames

ROOT = Path(__file__).resolve().parents[2]  # the checkout: `make models` keeps the wheel in its .cache
SKIMAGE_WHEEL = "scikit_image-*.whl"
# The face box YuNet gives on each photograph at full size (x1, y1, x2, y2): the crop around it is the head.
PORTRAITS = {"astronaut": (178, 62, 268, 176), "camera": (195, 113, 256, 194)}
PLACES_TRIED = 20  # places tried for a face before it is left out (it would cover a word or another face)
FACE_SIZES = (200, 150, 115, 90, 75, 60, 45, 35, 25)  # face height in pixels


@dataclass
class FaceFrame:
    """A frame, the rectangles (x1, y1, x2, y2, clipped to the frame) where a face was pasted, and its source."""

    image: np.ndarray
    faces: list[tuple[int, int, int, int]]
    sources: list[str]
    sizes: list[int]


@dataclass
class Face:
    name: str
    image: np.ndarray  # BGR
    box: tuple[float, float, float, float]  # the face inside `image`


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not an image")
    return image


def skimage_wheel(root: Path = ROOT) -> zipfile.ZipFile:
    wheels = sorted(glob.glob(str(root / ".cache" / "wheels" / SKIMAGE_WHEEL)))
    if not wheels:
        raise FileNotFoundError("scikit-image's wheel (the face photographs) is missing: run `make models`")
    return zipfile.ZipFile(wheels[0])


@functools.cache
def faces(root: Path = ROOT) -> tuple[Face, ...]:
    """Every face photograph in scikit-image's data, cropped to the head and shoulders around its face."""
    out = []
    with skimage_wheel(root) as wheel:
        for name, (x1, y1, x2, y2) in PORTRAITS.items():
            photo = decode(wheel.read(f"skimage/data/{name}.png"))
            # A square 2.4 face-heights wide around the face: hair, ears, neck and a little background.
            side = int(2.4 * (y2 - y1))
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2 + (y2 - y1) // 6
            left, top = max(0, cx - side // 2), max(0, cy - side // 2)
            crop = photo[top : top + side, left : left + side]
            out.append(Face(name, crop, (x1 - left, y1 - top, x2 - left, y2 - top)))
        lfw = np.load(io.BytesIO(wheel.read("skimage/data/lfw_subset.npy")))
    for i in range(100):  # the first 100 of the subset are faces, the rest are not
        grey = (lfw[i] * 255).astype(np.uint8)
        out.append(Face(f"lfw{i:03d}", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), (2.0, 2.0, 23.0, 24.0)))
    return tuple(out)


def _paste(
    frame: np.ndarray, face: Face, height: int, angle: float, mirror: bool, centre: np.ndarray
) -> tuple[int, int, int, int] | None:
    """Paste `face` scaled so its face is `height` px tall, rotated by `angle`, centred at `centre`.

    Returns the face's rectangle in the frame, clipped, or None if too little of it is inside.
    """
    image = cv2.flip(face.image, 1) if mirror else face.image
    x1, y1, x2, y2 = face.box
    if mirror:
        w = image.shape[1]
        x1, x2 = w - x2, w - x1
    scale = height / (y2 - y1)
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    h, w = scaled.shape[:2]
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rotation[:, 2] += centre - np.array([w / 2, h / 2])  # then move the crop's centre to `centre`
    fh, fw = frame.shape[:2]
    mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), rotation, (fw, fh))
    moved = cv2.warpAffine(scaled, rotation, (fw, fh), flags=cv2.INTER_LINEAR)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64) * scale
    placed = corners @ rotation[:, :2].T + rotation[:, 2]
    left, top = np.floor(placed.min(axis=0)).astype(int)
    right, bottom = np.ceil(placed.max(axis=0)).astype(int)
    box = (int(max(0, left)), int(max(0, top)), int(min(fw, right)), int(min(fh, bottom)))
    inside = (box[2] - box[0]) * (box[3] - box[1]) / max(1, (right - left) * (bottom - top))
    if inside < 0.6:  # mostly outside the frame: not this face's place
        return None
    frame[mask > 0] = moved[mask > 0]
    return box


def face_frames(
    seed: int,
    count: int,
    width: int = 640,
    height: int = 480,
    sizes: tuple[int, ...] = FACE_SIZES,
    beside_words: bool = False,
) -> tuple[list[FaceFrame], GroundTruth]:
    """`count` street frames with text (the sample's), each with one to three faces pasted in, and their truth.

    Faces do not overlap each other; a fifth of them reach past the frame's edge. `beside_words`: no
    head (twice its face's size) covers a word, as when people stand beside signs: what painting over
    a head costs then is what it costs around the head, not the words the head itself hides.
    """
    rng = np.random.default_rng(seed)
    frames, truth = render_frames(seed=seed, frames=count, width=width, height=height)
    people = faces()
    out = []
    for frame, frame_truth in zip(frames, truth.frames, strict=True):
        words = [np.array(w.quad) for w in frame_truth.words] if beside_words else []
        image = frame.copy()
        rects: list[tuple[int, int, int, int]] = []
        sources, placed_sizes = [], []
        for _ in range(int(rng.choice([1, 1, 2, 3]))):
            face = people[int(rng.integers(len(people)))] if rng.random() < 0.6 else people[int(rng.integers(2))]
            size = int(rng.choice(sizes))
            angle, mirror = float(rng.uniform(-20, 20)), bool(rng.random() < 0.5)
            margin = -0.25 * size if rng.random() < 0.2 else 0.9 * size  # a fifth are cut by the edge
            for _ in range(PLACES_TRIED):
                centre = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
                trial = image.copy()
                box = _paste(trial, face, size, angle, mirror, centre)
                near = [*rects, *((*q.min(axis=0), *q.max(axis=0)) for q in words)]
                if box is not None and not any(_overlap(box, r, 1.0 if words else 0.3) for r in near):
                    image = trial
                    rects.append(box)
                    sources.append(face.name)
                    placed_sizes.append(size)
                    break
        out.append(FaceFrame(image, rects, sources, placed_sizes))
    return out, truth


def _overlap(a: tuple[float, ...], b: tuple[float, ...], margin: float) -> bool:
    """Whether face `a` comes within `margin` face heights of rectangle `b` (keep heads apart, not just faces)."""
    pad = margin * (a[3] - a[1])
    return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1])
