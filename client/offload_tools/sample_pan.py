"""The `pan` sample style: a hand-held camera over a wall of photographs with signs, at 15 fps.

Continuous mode's test bed. The camera moves as a hand does: holds with a little shake, slow
pans, fast swipes smeared by motion blur, a zoom onto a small word, hard cuts to another wall,
and a passer-by who walks across the view and uncovers the signs behind. Ground truth for every
frame: the words whose text is whole in the frame and less than a third hidden. Tracking alone
cannot follow it: cuts and swipes bring words no earlier answer held.

Everything follows from the seed; photographs and fonts as in the `real` style.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from offload_tools.sample import FrameTruth, GroundTruth, WordTruth
from offload_tools.sample_photo import WORDS, _camera, _render_word, photo_source, photographs

FPS = 15.0
WALL_SCALE = 2.6  # a wall is this many frames wide and tall: room to pan
WALLS = 3  # a cut moves to the next one


@dataclass
class WallSign:
    word: str
    quad: np.ndarray  # the text's corners on the wall


@dataclass
class Wall:
    image: np.ndarray
    signs: list[WallSign]


@dataclass
class Pose:
    """Where the camera looks: the wall point at the frame's centre, zoom (frame px per wall px), roll."""

    x: float
    y: float
    zoom: float = 1.0
    roll_deg: float = 0.0


def _wall(rng: np.random.Generator, width: int, height: int) -> Wall:
    photos = photographs(photo_source())
    ww, wh = int(width * WALL_SCALE), int(height * WALL_SCALE)
    image = np.zeros((wh, ww, 3), np.uint8)
    tile = (ww // 2 + 1, wh // 2 + 1)
    for ty in range(2):  # four photographs side by side
        for tx in range(2):
            photo = photos[int(rng.integers(len(photos)))]
            image[ty * tile[1] : (ty + 1) * tile[1], tx * tile[0] : (tx + 1) * tile[0]] = cv2.resize(
                photo, tile, interpolation=cv2.INTER_AREA
            )[: wh - ty * tile[1], : ww - tx * tile[0]]
    signs: list[WallSign] = []
    taken: list[tuple[float, float, float, float]] = []
    for _ in range(80):  # tries; a wall holds ~12-18 signs
        if len(signs) >= 18:
            break
        word = WORDS[int(rng.integers(len(WORDS)))]
        patch, rect, alpha = _render_word(rng, word)
        ph, pw = patch.shape[:2]
        x, y = float(rng.uniform(20, ww - pw - 20)), float(rng.uniform(20, wh - ph - 20))
        box = (x - 12, y - 12, x + pw + 12, y + ph + 12)
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
            continue
        taken.append(box)
        area = image[int(y) : int(y) + ph, int(x) : int(x) + pw]
        if alpha is None:
            area[:] = patch
        else:
            weight = alpha.astype(np.float32)[..., None] / 255.0
            area[:] = (area * (1.0 - weight) + patch * weight).round().astype(np.uint8)
        signs.append(WallSign(word, rect + np.array([int(x), int(y)], np.float32)))
    return Wall(image, signs)


def _script(rng: np.random.Generator, frames: int, width: int, height: int) -> list[tuple[int, Pose, float]]:
    """Per frame: (wall index, pose, motion blur length in px along the pan)."""
    ww, wh = width * WALL_SCALE, height * WALL_SCALE
    out: list[tuple[int, Pose, float]] = []
    wall = 0
    pose = Pose(ww / 2, wh / 2)

    def clamp(p: Pose) -> Pose:  # the view stays on the wall
        hw, hh = width / 2 / p.zoom + 8, height / 2 / p.zoom + 8
        return Pose(float(np.clip(p.x, hw, ww - hw)), float(np.clip(p.y, hh, wh - hh)), p.zoom, p.roll_deg)

    while len(out) < frames:
        kind = rng.choice(["hold", "pan", "pan", "swipe", "zoom", "cut"], p=[0.22, 0.22, 0.2, 0.14, 0.12, 0.1])
        if kind == "cut":
            wall = (wall + 1) % WALLS
            pose = clamp(Pose(float(rng.uniform(0, ww)), float(rng.uniform(0, wh))))
            kind = "hold"
        length = {"hold": rng.integers(10, 25), "pan": rng.integers(20, 40), "swipe": rng.integers(5, 9),
                  "zoom": rng.integers(18, 30)}[kind]  # fmt: skip
        speed = {"hold": 0.0, "pan": rng.uniform(2, 6), "swipe": rng.uniform(22, 40), "zoom": rng.uniform(0, 1.5)}[kind]
        heading = rng.uniform(0, 2 * np.pi)
        target_zoom = float(rng.uniform(1.5, 2.0)) if kind == "zoom" and pose.zoom < 1.2 else 1.0
        zoom_step = (target_zoom / pose.zoom) ** (1.0 / int(length))
        for _ in range(int(length)):
            shake = rng.normal(0, 0.6, 2)  # a hand is never still
            step = speed * np.array([np.cos(heading), np.sin(heading)]) / pose.zoom
            pose = clamp(Pose(pose.x + step[0] + shake[0], pose.y + step[1] + shake[1], pose.zoom * zoom_step,
                              float(np.clip(pose.roll_deg + rng.normal(0, 0.15), -4, 4))))  # fmt: skip
            out.append((wall, pose, speed * 0.5 if kind == "swipe" else 0.0))
    return out[:frames]


def _matrix(pose: Pose, width: int, height: int) -> np.ndarray:
    """The 2x3 map from wall to frame pixels."""
    m = cv2.getRotationMatrix2D((pose.x, pose.y), pose.roll_deg, pose.zoom)
    m[:, 2] += np.array([width / 2 - pose.x, height / 2 - pose.y])
    return m


def _blur(frame: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    n = max(3, int(length) | 1)
    line = np.zeros((n, n), np.float32)
    line[n // 2, :] = 1.0 / n
    rotation = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle_deg, 1.0)
    kernel = np.asarray(cv2.warpAffine(line, rotation, (n, n)), np.float32)
    return cv2.filter2D(frame, -1, kernel / np.float32(max(float(kernel.sum()), 1e-6)))


def _hidden_share(quad: np.ndarray, occluder: tuple[float, float, float, float] | None) -> float:
    if occluder is None:
        return 0.0
    x1, y1 = quad.min(axis=0)
    x2, y2 = quad.max(axis=0)
    w = max(0.0, min(x2, occluder[2]) - max(x1, occluder[0]))
    h = max(0.0, min(y2, occluder[3]) - max(y1, occluder[1]))
    return float(w * h / max(1e-6, float((x2 - x1) * (y2 - y1))))


def render_pan_frames(seed: int, frames: int, width: int, height: int) -> tuple[list[np.ndarray], GroundTruth]:
    """The `pan` style's BGR frames and ground truth (`render_frames(..., style="pan")` calls this)."""
    rng = np.random.default_rng(seed)
    walls = [_wall(rng, width, height) for _ in range(WALLS)]
    script = _script(rng, frames, width, height)
    # A passer-by (a dark band a fifth of the frame wide) crosses the view once or twice, left to right.
    crossings = [int(rng.integers(0, max(1, frames - 30))) for _ in range(1 + frames // 200)]
    images: list[np.ndarray] = []
    truth: list[FrameTruth] = []
    previous: Pose | None = None
    for i, (w, pose, blur) in enumerate(script):
        m = _matrix(pose, width, height)
        frame = cv2.warpAffine(walls[w].image, m, (width, height), flags=cv2.INTER_LINEAR)
        if blur > 0 and previous is not None:
            angle = float(np.degrees(np.arctan2(pose.y - previous.y, pose.x - previous.x)))
            frame = _blur(frame, blur, -angle)
        occluder = None
        for start in crossings:
            if start <= i < start + 30:
                band = width // 5
                x = -band + (i - start) * (width + band) / 30
                occluder = (x, 0.0, x + band, float(height))
                frame[:, max(0, int(x)) : max(0, int(x + band))] = (40, 38, 45)
        words = []
        for sign in walls[w].signs:
            quad = cv2.transform(sign.quad.reshape(1, 4, 2), m).reshape(4, 2)
            inside = quad[:, 0].min() >= 2 and quad[:, 1].min() >= 2
            inside = inside and quad[:, 0].max() <= width - 2 and quad[:, 1].max() <= height - 2
            if inside and _hidden_share(quad, occluder) < 1 / 3:  # a smeared word is still there
                words.append(WordTruth(text=sign.word, quad=[(float(x), float(y)) for x, y in quad]))
        images.append(_camera(rng, frame))
        truth.append(FrameTruth(index=i, words=words))
        previous = pose
    return images, GroundTruth(seed=seed, style="pan", fps=FPS, width=width, height=height, frames=truth)
