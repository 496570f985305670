"""Privacy mode `redact`: faces are painted over on the device, and a frame leaves only once verified clean.

The promise: the server never receives a frame in which the device's own face detector (YuNet, run
at full resolution, at its configured score threshold of 0.5) still finds a face. So a frame goes:

1. detect at full resolution, down to a lower score (0.3): a half-seen face is painted too;
2. paint each face's *head* (the face box widened by 30 % of its width on each side, 60 % of its
   height up for hair, 30 % down for the chin) with one flat colour, the mean of the pixels around it;
3. run the detector again on exactly the pixels to be encoded. A frame in which it finds nothing,
   not even at 0.3, is sent. Otherwise every face found so far is painted again, 1.6x larger, and
   verified once more, as the JPEG the server will decode if a trace (0.3) is left: if a face
   still shows at 0.5, the frame stays on the device (`Redaction.image` is None) and the device
   answers it.

Why the margin and the JPEG: painted pixels verified at 0.45 (a blurred head) came back from a JPEG
at q90 as a face at 0.5 or more in 1-2 frames of 80 in `bench-redact`.

A frame in which step 1 finds nothing is already verified: its pixels are the ones the detector saw.

Why a flat fill (`make bench-redact`: 80 frames of every face photograph in scikit-image's data,
the astronaut, the cameraman in profile and 100 faces of Labeled Faces in the Wild, 25-200 px,
rotated up to ±20°, cut by the edge; `offload_tools/faces.py`, tuned on seed 1, confirmed on seed 2): a flat
fill of the head is verified clean on the first try in 79 of 80 frames, a 3x3 mosaic in 78, Telea
inpainting (this module's earlier painter) in 61, a heavy blur in 37: they rebuild a face-like
shading from the hair and neck around the region. The fill keeps nothing of the face and reads as
many words as any. YuNet finds faces down to about 25 px tall at full resolution (12 of 19 at 25 px,
18 of 20 at 35 px).

The redactor fails closed: if the face detector cannot be loaded or run, `Redactor.why_not` says
why and the client keeps every frame on the device.

Example:
    >>> redactor = Redactor.load(models_dir)          # doctest: +SKIP
    >>> outcome = redactor(frame)                      # doctest: +SKIP
    >>> outcome.image is not None, outcome.faces       # doctest: +SKIP
    (True, 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.image import decode_image, encode_jpeg
from offload_core.engine.repository import ModelFileError, how_to_get
from offload_core.engine.tasks.face_detection import FaceDetection

FACE_MODEL = "face-detector"
# Paint anything this face-like: below the promise's threshold, so a face the detector half sees on
# this frame (turning away, cut by the edge) is painted before it could score 0.5 on the next.
PAINT_SCORE = 0.3
# The head around a face box, in box widths (sides) and heights (up, down): hair and ears identify too.
HEAD_SIDE, HEAD_UP, HEAD_DOWN = 0.3, 0.6, 0.3
REPAINT_GROWTH = 1.6
RING = 8  # pixels around a region whose mean colour fills it

Region = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels
Painter = Callable[[np.ndarray, Region], None]


def fill(image: np.ndarray, region: Region) -> None:
    """Paint `region` of `image`, in place, with the mean colour of the ring of pixels around it."""
    x1, y1, x2, y2 = region
    ring = [
        image[max(0, y1 - RING) : y1, x1:x2], image[y2 : y2 + RING, x1:x2],
        image[y1:y2, max(0, x1 - RING) : x1], image[y1:y2, x2 : x2 + RING],
    ]  # fmt: skip
    pixels = np.concatenate([part.reshape(-1, image.shape[2]) for part in ring])
    image[y1:y2, x1:x2] = pixels.mean(axis=0) if len(pixels) else 128


def head(box: np.ndarray, width: int, height: int, growth: float = 1.0) -> Region:
    """The head around face `box` (x1, y1, x2, y2), `growth` times the usual margins, clipped to the frame."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    return (
        max(0, int(x1 - growth * HEAD_SIDE * bw)), max(0, int(y1 - growth * HEAD_UP * bh)),
        min(width, int(np.ceil(x2 + growth * HEAD_SIDE * bw))), min(height, int(np.ceil(y2 + growth * HEAD_DOWN * bh))),
    )  # fmt: skip


@dataclass(frozen=True)
class Redaction:
    """What `redact` did to one frame.

    `image` is the frame to send, verified: the detector finds no face in it at `promise`. None when
    a face remained after repainting: the frame must stay on the device.
    """

    image: np.ndarray | None
    faces: int  # faces painted over
    repainted: bool  # the first painting left a face, and a larger one was needed
    score: float  # the best face score left in `image` (or in the frame kept home)
    ms: float  # detection, painting and verification

    @property
    def kept_local(self) -> bool:
        return self.image is None


class Redactor:
    """Paints over every face `detector` finds, verifies the result, and says whether it may leave."""

    def __init__(self, detector: FaceDetection, paint: Painter = fill, paint_score: float = PAINT_SCORE) -> None:
        self.detector = detector
        self.paint = paint
        self.promise = detector.score_threshold  # model.yaml's threshold: what counts as "a face"
        self.paint_score = min(paint_score, self.promise)

    @classmethod
    def load(cls, models_dir: Path, threads: int = 1) -> Redactor:
        """The device's face detector, on a phone's thread budget. Raises when it cannot run."""
        repo = ModelRepository(models_dir)
        spec = repo.spec(FACE_MODEL)
        config = SessionConfig(providers=["CPUExecutionProvider"], intra_op_threads=threads)
        detector = repo.load(FACE_MODEL, spec.device_variant, config)
        if not isinstance(detector, FaceDetection):
            raise ValueError(f"{FACE_MODEL!r} must be a face-detection model, not {spec.task}")
        detector.warmup(480, 640)
        return cls(detector)

    @staticmethod
    def why_not(models_dir: Path, exc: Exception) -> str:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        missing = isinstance(exc, (FileNotFoundError, KeyError, ModelFileError))
        hint = f"; {how_to_get(models_dir)} ({FACE_MODEL})" if missing else ""
        return f"the face detector cannot run ({message}){hint}"

    def __call__(self, frame: np.ndarray, quality: int = 90) -> Redaction:
        """Paint over the faces in a copy of `frame` and verify it at full resolution (as a JPEG at
        `quality` when a trace of a face is left)."""
        start = time.perf_counter()
        height, width = frame.shape[:2]
        found = self._faces(frame)
        if not found:  # nothing painted: the pixels the detector just saw are the ones to send
            return Redaction(frame, 0, False, 0.0, _ms(start))
        out = frame.copy()
        for box, _ in found:
            self.paint(out, head(box, width, height))
        left = self._faces(out)
        if not left:  # not even a trace at `paint_score`: a margin the JPEG encoding cannot cross
            return Redaction(out, len(found), False, 0.0, _ms(start))
        found += left
        for box, _ in found:
            self.paint(out, head(box, width, height, REPAINT_GROWTH))
        left = self._faces(out)
        if left:  # a trace below the promise: judge the pixels the server will decode, JPEG artefacts and all
            left = self._faces(decode_image(encode_jpeg(out, quality)))
        score = max((s for _, s in left), default=0.0)
        return Redaction(out if score < self.promise else None, len(found), True, score, _ms(start))

    def shows_face(self, image: np.ndarray) -> bool:
        """Whether the detector finds a face at the promise's threshold in `image` as it is (a crop or a
        scaled view as the server will decode it: smaller, a head can read as a face again)."""
        return bool(self.detector.find(image, self.promise))

    def _faces(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Face boxes (x1, y1, x2, y2) at full resolution down to `paint_score`, with their scores."""
        return [
            (np.array([b.points[0][0], b.points[0][1], b.points[2][0], b.points[2][1]]), b.score)
            for b in self.detector.find(image, self.paint_score)
        ]


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
