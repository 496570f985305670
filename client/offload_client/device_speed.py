"""An emulated device slower than this machine, that pays for its work with real work.

`slowdown` k makes each device-side step (inference, redaction, JPEG encoding, building a request)
take k times this thread's CPU time for it: after the step, this thread computes for (k - 1) times
that CPU time more. A wait would leave the core idle for that time, so probes, races and encodes would
look free and the device would never compete with itself; real work keeps its core busy, as a phone's
is. The work is OpenCV's DCT of a small buffer: one thread (OpenCV parallelises a blur even at 96x96,
and another core would do the work), and it releases the GIL, so the app's other threads still run.

Example:
    >>> device = DeviceSpeed(3.0)
    >>> with device.paying():      # the step, then twice its CPU time of real work
    ...     _ = sum(range(10_000))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

# One slice of work: ~0.08 ms here, short enough that a stop request or the target is met closely.
_BUFFER = np.random.default_rng(0).random((96, 96), dtype=np.float32)


class DeviceSpeed:
    """How much slower than this machine the emulated device is (1.0: as fast, nothing added)."""

    def __init__(self, slowdown: float = 1.0) -> None:
        if slowdown < 1.0:
            raise ValueError(f"device slowdown must be >= 1, got {slowdown}")
        self.slowdown = slowdown

    @contextmanager
    def paying(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Run the block, then work for (slowdown - 1) times the CPU time it took on this thread (also
        when it raised: a frame that redaction kept home still cost the device its detections)."""
        cpu = time.thread_time()
        try:
            yield
        finally:
            if self.slowdown > 1.0:
                self.work((self.slowdown - 1.0) * (time.thread_time() - cpu), stop)

    def work(self, cpu_s: float, stop: threading.Event | None = None) -> None:
        """Compute on this thread for `cpu_s` seconds of its CPU time, or until `stop` is set.

        CPU time, not the wall clock: a moment when another process holds the core is paid once,
        as it would be on a phone, not k times.
        """
        end = time.thread_time() + cpu_s
        while time.thread_time() < end and not (stop is not None and stop.is_set()):
            cv2.dct(_BUFFER)
