"""A phone's device model for fleet benchmarks: answers measured once on this machine, replayed at phone speed.

Thirty-two phones cannot each run the device model on this machine's one spare core: their CPUs are
not this machine. So every frame is run once per device variant up front (`ReplayDevice.measure`), its
answer and its CPU time kept; a phone then replays that answer after waiting the CPU time x the
slowdown (a wait, not work: the phone's core is its own). The server, the network and the SDK's
decisions stay real. The phone's other work (JPEG encoding) runs here for real, at this machine's speed.

Example:
    >>> with ReplayDevice.installed():                                   # doctest: +SKIP
    ...     ReplayDevice.measure("text-spotter", models_dir, frames, slowdown=3.0)
    ...     phone = OffloadClient(target, device_slowdown=3.0, models_dir=models_dir)
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from offload_client import _client_base
from offload_client.device_speed import DeviceSpeed
from offload_client.local import Files, LocalEngine
from offload_core.engine import Task
from offload_core.types import Prediction, StageTimes


def fingerprint(frame: np.ndarray) -> bytes:
    """A frame's identity, cheap enough to take on every run (a 1/8 subsample)."""
    return hashlib.blake2b(np.ascontiguousarray(frame[::8, ::8]).tobytes(), digest_size=16).digest()


class ReplayDevice(LocalEngine):
    """A `LocalEngine` whose runs replay measured answers after the emulated phone's time for them.

    Tasks load once for all phones (`_shared`); answers are measured once per (variant, frame).
    """

    _shared: ClassVar[dict[str, tuple[Task, float]]] = {}
    _answers: ClassVar[dict[tuple[str, bytes], tuple[Prediction, StageTimes, float]]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The phone's encodes run here at this machine's speed: its CPU is not this one's to slow down.
        self.device = DeviceSpeed(1.0)

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[None]:
        """Clients built inside the block get this device instead of the real one."""
        real = getattr(_client_base, "LocalEngine")  # noqa: B009 (the name the client builds its device from)
        setattr(_client_base, "LocalEngine", cls)  # noqa: B010
        try:
            yield
        finally:
            setattr(_client_base, "LocalEngine", real)  # noqa: B010

    @classmethod
    def measure(cls, model: str, models_dir: Path, frames: list[np.ndarray], slowdown: float) -> dict[str, float]:
        """Run every device variant on every frame once; the mean device ms (x slowdown) per variant."""
        engine = cls(model, models_dir, 1, slowdown)
        engine.load_all()
        means = {}
        for variant in engine.variants:
            task = engine.task_for(variant)
            spent = []
            for frame in frames:
                cpu = time.thread_time()
                prediction, stages = task.run(frame)
                cpu_ms = (time.thread_time() - cpu) * 1000.0
                cls._answers[(variant, fingerprint(frame))] = (prediction, stages, cpu_ms)
                spent.append(cpu_ms * slowdown)
            means[variant] = round(float(np.mean(spent)), 1)
        return means

    def _load(self, files: Files, variant: str | None = None) -> Task:
        name = variant or self._spec().device_variant
        with ReplayDevice._shared_lock:
            if name not in ReplayDevice._shared:
                task = super()._load(files, name)
                ReplayDevice._shared[name] = (task, self.blank_ms[name])
            task, self.blank_ms[name] = ReplayDevice._shared[name]
        return task

    def run(
        self, frame: np.ndarray, stop: threading.Event | None = None, variant: str | None = None
    ) -> tuple[Prediction, StageTimes]:
        name = variant or self.variant
        key = (name, fingerprint(frame))
        if key not in ReplayDevice._answers:  # a frame not measured up front: measured now, once
            cpu = time.thread_time()
            prediction, stages = self.task_for(name).run(frame)
            ReplayDevice._answers[key] = (prediction, stages, (time.thread_time() - cpu) * 1000.0)
        prediction, stages, cpu_ms = ReplayDevice._answers[key]
        device_s = cpu_ms * self.slowdown / 1000.0
        (stop or threading.Event()).wait(device_s)  # a race the server won stops the phone's run too
        f = self.slowdown * cpu_ms / max(stages.preprocess_ms + stages.inference_ms + stages.postprocess_ms, 1e-6)
        return prediction, StageTimes(
            preprocess_ms=stages.preprocess_ms * f,
            inference_ms=stages.inference_ms * f,
            postprocess_ms=stages.postprocess_ms * f,
        )
