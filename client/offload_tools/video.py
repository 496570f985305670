"""Frames from a video file, decoded ahead, or the newest of a live source's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Queue

import cv2
import numpy as np


def read_frames(path: Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield BGR frames from any video OpenCV can read."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"OpenCV cannot open video {path}")
    try:
        count = 0
        while limit is None or count < limit:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
    finally:
        capture.release()


def prefetched(frames: Iterator[np.ndarray], depth: int = 30) -> Iterator[np.ndarray]:
    """`frames`, decoded ahead on a thread of their own, as a camera delivers them: the consumer's
    clock is not spent decoding."""
    queue: Queue[np.ndarray | None] = Queue(depth)

    def fill() -> None:
        try:
            for frame in frames:
                queue.put(frame)
        finally:
            queue.put(None)

    threading.Thread(target=fill, name="offload-video-decode", daemon=True).start()
    while (frame := queue.get()) is not None:
        yield frame


class Newest:
    """A live source's frames as an app sees them: always the newest one. A thread reads the source at
    its own rate; a consumer slower than the camera skips the frames it had no time for (`skipped`), so
    what it shows is never seconds behind the world."""

    def __init__(self, frames: Iterator[np.ndarray]) -> None:
        self.skipped = 0
        self._frames = frames
        self._newest: np.ndarray | None = None
        self._ended = False
        self._ready = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="offload-live-source", daemon=True)
        self._reader.start()

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the reading thread to end (stop its source first): a process that exits while a
        thread is inside the video library's read aborts."""
        self._reader.join(timeout_s)

    def _read(self) -> None:
        try:
            for frame in self._frames:
                with self._ready:
                    self.skipped += self._newest is not None
                    self._newest = frame
                    self._ready.notify()
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._newest is not None or self._ended)
                frame, self._newest = self._newest, None
            if frame is None:
                return
            yield frame
