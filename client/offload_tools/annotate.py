"""Frames with their answers drawn, and the video file they go to (`offload run --save-video`).

Boxes are coloured by where the content came from, in the dashboard's colours: the device (blue), the
server (orange), or carried by the tracker from an earlier frame (green). The words are written above
their boxes; one line at the top says the path, the latency, the answer's age and the uplink so far.

Example:
    >>> with AnnotatedVideo(Path("out/run.mp4"), fps=15.0) as video:      # doctest: +SKIP
    ...     video.write(frame, result)
    >>> video.path, video.codec                                            # doctest: +SKIP
    (PosixPath('out/run.webm'), 'VP8 (WebM)')
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from offload_core.types import FrameResult, Source, Where

# BGR, the dashboard's colours: #1f6fb4 device, #e8750a server, #22aa22 tracked, #bb0000 nothing.
COLOURS: dict[str, tuple[int, int, int]] = {
    "device": (180, 111, 31),
    "server": (10, 117, 232),
    "tracked": (34, 170, 34),
    "none": (0, 0, 187),
}
# What the installed OpenCV may write, best first: H.264 plays in every browser, but most OpenCV wheels
# ship without an H.264 encoder; VP8 in WebM plays in every browser too; MJPEG in AVI plays anywhere else.
CODECS = (("avc1", ".mp4", "H.264 (MP4)"), ("VP80", ".webm", "VP8 (WebM)"), ("MJPG", ".avi", "MJPEG (AVI)"))


def origin(result: FrameResult) -> str:
    """Where a frame's boxes came from: "device", "server", "tracked" or "none"."""
    if result.source is not None:  # continuous mode says it per frame
        return {
            Source.FRESH_LOCAL: "device",
            Source.FRESH_REMOTE: "server",
            Source.TRACKED: "tracked",
        }.get(result.source, "none")
    return {Where.LOCAL: "device", Where.REMOTE: "server"}.get(result.where, "none")


def annotate(frame: np.ndarray, result: FrameResult, uplink_kb: float = 0.0) -> np.ndarray:
    """A copy of `frame` with `result` drawn on it: boxes, words, and the one-line overlay."""
    out = frame.copy()
    colour = COLOURS[origin(result)]
    # A text spotter's words carry their own boxes; a detector's boxes carry labels ("face").
    for box, label in [*((b, b.label) for b in result.boxes), *((t.box, t.text) for t in result.texts)]:
        points = np.array(box.points, dtype=np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [points], isClosed=True, color=colour, thickness=2)
        if label:
            x, y = int(min(p[0] for p in box.points)), int(min(p[1] for p in box.points))
            _label(out, label, (x, max(14, y - 4)), colour)
    age = f", answer {result.age_ms:.0f} ms old" if result.age_ms is not None else ""
    line = f"{origin(result)} · {result.latency_ms:.0f} ms{age} · uplink {uplink_kb:.0f} KB"
    _label(out, line, (6, 18), COLOURS[origin(result)])
    return out


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """White text on a patch of `colour`: readable on any frame."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    x, y = at
    cv2.rectangle(image, (x - 2, y - h - 3), (x + w + 2, y + base), colour, thickness=-1)
    cv2.putText(image, text, (x, y), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


class AnnotatedVideo:
    """A video file of annotated frames. The codec is the best the installed OpenCV writes (`CODECS`); the
    file's suffix follows it (`path`), so `run.mp4` may become `run.webm`: `codec` says which."""

    def __init__(self, path: Path, fps: float) -> None:
        self.requested = path
        self.fps = fps if fps > 0 else 15.0
        self.path = path
        self.codec = ""
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._uplink = 0

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        """Draw `result` on `frame` and append it (the first frame fixes the size)."""
        self._uplink += result.uplink_bytes
        if self._writer is None:
            self._writer = self._open(frame.shape[1], frame.shape[0])
        self._writer.write(annotate(frame, result, self._uplink / 1024))
        self.frames += 1

    def _open(self, width: int, height: int) -> cv2.VideoWriter:
        self.requested.parent.mkdir(parents=True, exist_ok=True)
        asked = sorted(CODECS, key=lambda codec: codec[1] != self.requested.suffix.lower())  # the suffix asked first
        for fourcc, suffix, name in asked:
            path = self.requested.with_suffix(suffix)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), self.fps, (width, height))
            if writer.isOpened():
                self.path, self.codec = path, name
                return writer
            writer.release()
        raise RuntimeError(f"OpenCV writes none of {', '.join(c[2] for c in CODECS)} here: no video saved")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
