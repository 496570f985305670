"""The on-device path: the model's device variant, loaded once, on a phone-sized thread budget."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from offload_client.engine import ModelRepository, SessionConfig, Task
from offload_client.types import Prediction, StageTimes


class LocalEngine:
    """Runs `model`'s device variant; loading is lazy and happens once, even across threads."""

    def __init__(self, model: str, models_dir: Path | str | None = None, threads: int = 1) -> None:
        self.model = model
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
        return self.task.run(frame)
