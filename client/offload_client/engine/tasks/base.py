"""What every task offers, and the timed ONNX Runtime call they share."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np
import onnxruntime as ort

from offload_client.engine.spec import ModelSpec, VariantSpec
from offload_client.types import Prediction, StageTimes


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class OnnxModel:
    """One onnxruntime session and its single input, timed on every call."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        output = self.session.run(None, {self.input_name: tensor})[0]
        return np.asarray(output), elapsed_ms(start)


class Task(ABC):
    """A runnable model variant: `run(image)` gives its metadata and where the time went.

    Like LitServe's hooks, each task splits into pre-process, inference and
    post-process, so a server can time (and later batch) the parts separately.
    """

    def __init__(self, spec: ModelSpec, variant: VariantSpec) -> None:
        self.spec = spec
        self.variant = variant

    @abstractmethod
    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        """Run on one HxWx3 BGR uint8 image."""

    def warmup(self, height: int = 360, width: int = 640) -> None:
        """Run once on a blank frame so the first real frame does not pay for allocation."""
        self.run(np.full((height, width, 3), 127, dtype=np.uint8))


def normalize(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """HxWx3 uint8 → 1x3xHxW float32 with the model's scale, mean and std."""
    inp = spec.input
    if inp.color_order.upper() == "RGB":
        image = image[:, :, ::-1]
    x = image.astype(np.float32) * inp.scale
    x -= np.asarray(inp.mean, dtype=np.float32)
    x /= np.asarray(inp.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
