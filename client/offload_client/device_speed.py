"""An emulated device slower than this machine, that pays for its work with real work.

`slowdown` k makes each device-side step (inference, redaction, JPEG encoding, building a request)
take k times this thread's CPU time for it: after the step, this thread computes for (k - 1) times
that CPU time more. A wait would leave the core idle for that time, so probes, races and encodes would
look free and the device would never compete with itself; real work keeps its core busy, as a phone's
is. The work is OpenCV's DCT of a small buffer: one thread (OpenCV parallelises a blur even at 96x96,
and another core would do the work), and it releases the GIL, so the app's other threads still run.

The step's own time on the device is k times its CPU time (`Bill.device_ms`), not k times its wall
clock: on a shared core a preempted step's wall clock grows, and multiplying it would charge the
phone k times for a moment another process held the core.

Example:
    >>> device = DeviceSpeed(3.0)
    >>> with device.paying() as bill:      # the step, then twice its CPU time of real work
    ...     _ = sum(range(10_000))
    >>> bill.device_ms >= bill.cpu_ms
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

# One slice of work: ~0.08 ms here, short enough that a stop request or the target is met closely.
_BUFFER = np.random.default_rng(0).random((96, 96), dtype=np.float32)


@dataclass
class Bill:
    """What one step cost, filled in when it ends: this thread's CPU time and wall clock, and the device's time."""

    slowdown: float
    cpu_ms: float = 0.0
    wall_ms: float = 0.0

    @property
    def device_ms(self) -> float:
        """The step on the emulated device: k times its CPU time here."""
        return self.cpu_ms * self.slowdown

    def scale(self) -> float:
        """What to multiply the step's wall-clock parts by so that they add up to `device_ms`."""
        return self.device_ms / self.wall_ms if self.wall_ms > 0 else self.slowdown


class DeviceSpeed:
    """How much slower than this machine the emulated device is (1.0: as fast, nothing added)."""

    def __init__(self, slowdown: float = 1.0) -> None:
        if slowdown < 1.0:
            raise ValueError(f"device slowdown must be >= 1, got {slowdown}")
        self.slowdown = slowdown
        if slowdown > 1.0:
            # The device's steps are charged by this thread's CPU time: OpenCV's own worker threads
            # (resize, warps, colour conversion) would do work the bill never sees.
            cv2.setNumThreads(1)

    @contextmanager
    def paying(self, stop: threading.Event | None = None) -> Iterator[Bill]:
        """Run the block, then work for (slowdown - 1) times the CPU time it took on this thread (also
        when it raised: a frame that redaction kept home still cost the device its detections)."""
        bill = Bill(self.slowdown)
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            yield bill
        finally:
            bill.cpu_ms = (time.thread_time() - cpu) * 1000.0
            bill.wall_ms = (time.perf_counter() - wall) * 1000.0
            if self.slowdown > 1.0:
                self.work((self.slowdown - 1.0) * bill.cpu_ms / 1000.0, stop)

    def work(self, cpu_s: float, stop: threading.Event | None = None) -> None:
        """Compute on this thread for `cpu_s` seconds of its CPU time, or until `stop` is set.

        CPU time, not the wall clock: a moment when another process holds the core is paid once,
        as it would be on a phone, not k times.
        """
        end = time.thread_time() + cpu_s
        while time.thread_time() < end and not (stop is not None and stop.is_set()):
            cv2.dct(_BUFFER)
