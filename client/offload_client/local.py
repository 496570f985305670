"""The on-device path: the model's device variant, loaded once, on a phone-sized thread budget."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from offload_client.engine import ModelRepository, SessionConfig, Task
from offload_client.types import Prediction, StageTimes


class LocalEngine:
    """Runs `model`'s device variant; loading is lazy and happens once, even across threads."""

    def __init__(
        self, model: str, models_dir: Path | str | None = None, threads: int = 1, slowdown: float = 1.0
    ) -> None:
        if slowdown < 1.0:
            raise ValueError(f"device slowdown must be >= 1, got {slowdown}")
        self.model = model
        # Emulates a phone slower than this machine: each run takes `slowdown` times as long.
        self.slowdown = slowdown
        self.models_dir = models_dir
        self.config = SessionConfig(providers=["CPUExecutionProvider"], intra_op_threads=threads)
        self._task: Task | None = None
        self._lock = threading.Lock()

    @property
    def task(self) -> Task:
        with self._lock:
            if self._task is None:
                repo = ModelRepository(self.models_dir)
                spec = repo.spec(self.model)
                self._task = repo.load(self.model, spec.device_variant, self.config)
                self._task.warmup()
            return self._task

    @property
    def variant(self) -> str:
        return self.task.variant.name

    def run(self, frame: np.ndarray) -> tuple[Prediction, StageTimes]:
        task = self.task
        start = time.perf_counter()
        prediction, stages = task.run(frame)
        if self.slowdown > 1.0:
            time.sleep((self.slowdown - 1.0) * (time.perf_counter() - start))
            f = self.slowdown
            stages = StageTimes(
                preprocess_ms=stages.preprocess_ms * f,
                inference_ms=stages.inference_ms * f,
                postprocess_ms=stages.postprocess_ms * f,
            )
        return prediction, stages
