"""Where `offload run` takes its frames from: a video file, a camera, a stream URL, or a folder of images.

`open_source("clip.mp4")`, `open_source("0")` (camera 0), `open_source("rtsp://cam/live")` or
`open_source("http://host/stream.mjpg")` (anything OpenCV's FFmpeg backend opens), `open_source("photos/")`
or `open_source("photos/*.jpg")` (sorted; each image a frame). A camera or a stream is live: it has no
frame count and no end. A stream that drops is reopened with back-off; the frames it would have delivered
while it was down are counted in `lost`, never invented.

Example:
    >>> source = open_source("photos/", fps=2.0)                  # doctest: +SKIP
    >>> source.describe(), source.total, source.live              # doctest: +SKIP
    ('folder photos/ (12 images)', 12, False)
"""

from __future__ import annotations

import glob
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
# A stream that drops is reopened after 0.5, 1, 2, 4 s... (at most `MAX_BACKOFF_S` apart), and given up on
# after `give_up_s` down: a camera that rebooted is back within seconds; one that is gone is gone.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0


class SourceError(ValueError):
    """A source that cannot be opened: the message names it and says what OpenCV said."""


@dataclass
class Source:
    """Frames from one place. `total`: the frame count (None: live, no end); `fps`: the rate it delivers at
    (a file's recorded rate, a camera's, or 0 when unknown); `lost`: frames a stream would have delivered
    while it was down; `reopened`: how many times it came back."""

    spec: str
    kind: str  # "file", "camera", "stream" or "folder"
    total: int | None
    fps: float
    images: list[Path] = field(default_factory=list)
    give_up_s: float = 30.0
    lost: int = 0
    reopened: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")

    def describe(self) -> str:
        if self.kind == "folder":
            return f"folder {self.spec} ({len(self.images)} images)"
        return f"{self.kind} {self.spec}" + (f" ({self.total} frames)" if self.total else "")

    def stop(self) -> None:
        """End `frames()` after the frame being read (a live source, read on another thread, has no end)."""
        self.stopping.set()

    def frames(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """Yield BGR frames until the source ends, `limit` frames, or (live) the consumer stops."""
        for produced, frame in enumerate(self._images() if self.kind == "folder" else self._captured()):
            if (limit is not None and produced >= limit) or self.stopping.is_set():
                return
            yield frame

    def _images(self) -> Iterator[np.ndarray]:
        for path in self.images:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"cannot read image {path}: OpenCV could not decode it")
            yield image

    def _captured(self) -> Iterator[np.ndarray]:
        capture = _capture(self.spec, self.kind)
        try:
            while True:
                ok, frame = capture.read()
                if ok:
                    yield frame
                    continue
                capture.release()
                if self.kind != "stream":
                    return  # a file ended; a camera that stops delivering has been unplugged
                down = self._reconnect()
                if down is None:
                    return
                capture = down
        finally:
            capture.release()

    def _reconnect(self) -> cv2.VideoCapture | None:
        """Reopen a dropped stream with back-off; count what it would have delivered while down."""
        went_down, wait = time.monotonic(), FIRST_BACKOFF_S
        while time.monotonic() - went_down < self.give_up_s:
            if self.stopping.wait(wait):
                return None
            wait = min(MAX_BACKOFF_S, wait * 2)
            capture = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG)
            if capture.isOpened():
                self.reopened += 1
                self.lost += round((time.monotonic() - went_down) * (self.fps or 0.0))
                return capture
            capture.release()
        self.lost += round((time.monotonic() - went_down) * (self.fps or 0.0))
        return None


def _capture(spec: str, kind: str) -> cv2.VideoCapture:
    if kind == "camera":
        return cv2.VideoCapture(int(spec))
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG) if kind == "stream" else cv2.VideoCapture(spec)


def _kind(spec: str) -> str:
    if spec.isdigit():
        return "camera"
    if spec.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if Path(spec).is_dir() or glob.has_magic(spec):
        return "folder"
    return "file"


def _folder(spec: str) -> list[Path]:
    pattern = str(Path(spec) / "*") if Path(spec).is_dir() else spec
    return sorted(p for p in map(Path, glob.glob(pattern)) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def open_source(spec: str | Path, fps: float = 0.0, give_up_s: float = 30.0) -> Source:
    """Open `spec` (a video file, a camera index, a stream URL, a folder or a glob of images) or raise
    `SourceError` with one line naming it. `fps` overrides the rate the source says (a folder has none)."""
    spec = str(spec)
    kind = _kind(spec)
    if kind == "folder":
        images = _folder(spec)
        if not images:
            raise SourceError(f"no images in {spec} (looked for {', '.join(IMAGE_SUFFIXES)})")
        return Source(spec, kind, len(images), fps, images=images)
    if kind == "file" and not Path(spec).is_file():
        raise SourceError(f"no such video file: {spec} (a camera is a number, a stream a URL, images a folder)")
    capture = _capture(spec, kind)
    try:
        if not capture.isOpened():
            what = {"camera": f"camera {spec}", "stream": f"stream {spec}", "file": f"video {spec}"}[kind]
            raise SourceError(f"cannot open {what}: OpenCV could not open it{_hint(kind)}")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "file" else 0
        rate = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    own = rate if 1.0 <= rate <= 240.0 else 0.0
    return Source(spec, kind, count if count > 0 else None, fps or own, give_up_s=give_up_s)


def _hint(kind: str) -> str:
    return {
        "camera": " (is one connected, and may this user read /dev/video*?)",
        "stream": " (is the URL right and the server up? OpenCV's FFmpeg backend reads RTSP, HTTP MJPEG, HLS...)",
        "file": " (is it a video in a format FFmpeg reads?)",
    }[kind]
