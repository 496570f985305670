"""Privacy mode `redact`: faces are found on the device and blurred before a frame may leave it.

Each face box is enlarged by 30 % (a detector's box hugs the face; hair and ears identify too) and
kept for two more frames after the detector last saw it (a face turning away for a frame is still
there). The region is then painted over from the pixels around it (OpenCV's Telea inpainting), not
blurred in place: nothing of the face survives, and the same detector finds no face in the result.
Measured on the redaction test's video, every in-place blur left a face for YuNet to find: mosaics
of 6x6 down to 2x2 cells, smoothed, at scores 0.52-0.82, and even a flat fill of the region's mean
colour at 0.58 (a blank head on a body reads as a face); inpainting left none. The text model
still reads the rest of the frame.

The redactor fails closed: if the face detector cannot be loaded or run, `Redactor.missing`
says why and the client keeps every frame on the device.

Example:
    >>> redactor = Redactor.load(models_dir)          # doctest: +SKIP
    >>> safe, faces = redactor(frame)                  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from offload_client.engine import ModelRepository, SessionConfig, Task
from offload_client.engine.repository import ModelFileError, how_to_get

FACE_MODEL = "face-detector"
ENLARGE = 0.30
HOLD_FRAMES = 2
MARGIN = 8  # pixels around a face that the inpainting draws from
INPAINT_SIDE = 32
DETECT_SCALE = 0.6


@dataclass
class Redactor:
    """Blurs the faces `detector` finds (and those it found in the last `hold` frames)."""

    detector: Task
    enlarge: float = ENLARGE
    hold: int = HOLD_FRAMES
    # The detector sees the frame at this scale: at 0.6 YuNet takes ~6 ms for a 640x480 frame on one
    # thread instead of 15 (a face under ~17 px across, hardly recognisable, may then go unseen).
    detect_scale: float = DETECT_SCALE
    # Boxes (x1, y1, x2, y2) still to blur, and for how many more frames.
    _held: list[tuple[np.ndarray, int]] = field(default_factory=list)
    last_ms: float = 0.0

    @classmethod
    def load(cls, models_dir: Path, threads: int = 1) -> Redactor:
        """The device's face detector, on a phone's thread budget. Raises when it cannot run."""
        repo = ModelRepository(models_dir)
        spec = repo.spec(FACE_MODEL)
        config = SessionConfig(providers=["CPUExecutionProvider"], intra_op_threads=threads)
        detector = repo.load(FACE_MODEL, spec.device_variant, config)
        detector.warmup(480, 640)
        return cls(detector)

    @staticmethod
    def why_not(models_dir: Path, exc: Exception) -> str:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        missing = isinstance(exc, (FileNotFoundError, KeyError, ModelFileError))
        hint = f"; {how_to_get(models_dir)} ({FACE_MODEL})" if missing else ""
        return f"the face detector cannot run ({message}){hint}"

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, int]:
        """A copy of `frame` with every face blurred, and how many regions were blurred."""
        start = time.perf_counter()
        seen = frame
        if self.detect_scale != 1.0:
            seen = cv2.resize(frame, None, fx=self.detect_scale, fy=self.detect_scale, interpolation=cv2.INTER_AREA)
        prediction, _ = self.detector.run(seen)
        found = [
            np.array([b.points[0][0], b.points[0][1], b.points[2][0], b.points[2][1]]) / self.detect_scale
            for b in prediction.boxes
        ]
        self._held = [(box, self.hold) for box in found] + [(box, n - 1) for box, n in self._held if n > 0]
        out = frame.copy()
        for box, _ in self._held:
            self._fill(out, box)
        self.last_ms = (time.perf_counter() - start) * 1000.0
        return out, len(self._held)

    def _fill(self, image: np.ndarray, box: np.ndarray) -> None:
        """Paint the enlarged `box` over, in place, from the pixels around it (a margin of 8 px).

        The inpainting runs on the window shrunk to at most INPAINT_SIDE px and is scaled back: the
        face is gone either way, and it costs a tenth (6.5 ms for three faces at full size).
        """
        h, w = image.shape[:2]
        x1, y1, x2, y2 = self._enlarged(box, w, h)
        if x2 <= x1 or y2 <= y1:
            return
        left, top, right, bottom = max(0, x1 - MARGIN), max(0, y1 - MARGIN), min(w, x2 + MARGIN), min(h, y2 + MARGIN)
        window = image[top:bottom, left:right]
        shrink = min(1.0, INPAINT_SIDE / max(window.shape[:2]))
        small = cv2.resize(window, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        mask = np.zeros(small.shape[:2], np.uint8)
        sx1, sy1 = int((x1 - left) * shrink), int((y1 - top) * shrink)
        sx2, sy2 = int(np.ceil((x2 - left) * shrink)), int(np.ceil((y2 - top) * shrink))
        mask[sy1:sy2, sx1:sx2] = 255
        painted = cv2.resize(cv2.inpaint(small, mask, 3, cv2.INPAINT_TELEA), (right - left, bottom - top))
        image[y1:y2, x1:x2] = painted[y1 - top : y2 - top, x1 - left : x2 - left]

    def _enlarged(self, box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = box
        dx, dy = (x2 - x1) * self.enlarge / 2, (y2 - y1) * self.enlarge / 2
        left, top = max(0, int(x1 - dx)), max(0, int(y1 - dy))
        return left, top, min(width, int(np.ceil(x2 + dx))), min(height, int(np.ceil(y2 + dy)))
