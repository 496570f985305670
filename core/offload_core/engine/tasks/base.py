"""What every task offers, and the timed ONNX Runtime call they share."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.types import Prediction, StageTimes


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def blank_frame(height: int = 360, width: int = 640) -> np.ndarray:
    """A grey BGR frame: what warm-up runs on."""
    return np.full((height, width, 3), 127, dtype=np.uint8)


class OnnxModel:
    """One onnxruntime session and its single input, timed on every call.

    On CUDA the call goes through I/O binding: the input is copied to the GPU once
    and the output comes back once, with no staging copies in between.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        io_binding: bool = True,
        source: Path | None = None,
        float_weights: bool = False,
    ) -> None:
        self.session = session
        self.source = source  # the ONNX file, so that a server can open a second session on it
        self.float_weights = float_weights  # how that session must load it (see `create_session`)
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.output_name = session.get_outputs()[0].name
        # A symbolic or unknown first dimension means the graph takes any batch size.
        dim = first.shape[0] if first.shape else 1
        self.has_batch_axis = not isinstance(dim, int) or dim < 1
        self.on_cuda = session.get_providers()[0] == "CUDAExecutionProvider"
        self.io_binding = io_binding and self.on_cuda

    def __call__(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        if self.io_binding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, tensor)
            binding.bind_output(self.output_name, "cuda")
            self.session.run_with_iobinding(binding)
            output = binding.copy_outputs_to_cpu()[0]
        else:
            output = self.session.run([self.output_name], {self.input_name: tensor})[0]
        return np.asarray(output), elapsed_ms(start)


class Task(ABC):
    """A runnable model variant: `run(image)` gives its metadata and where the time went.

    Like LitServe's hooks, each task splits into pre-process, inference and
    post-process, so a server can time (and later batch) the parts separately.
    """

    # What a server may send this task beyond whole frames (see offload_core.regions): "regions" when
    # its answers are boxes that a frame rebuilt from crops still gives; "read-regions" when it can
    # read a known line of text alone (`read`).
    accepts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: ModelSpec, variant: VariantSpec) -> None:
        self.spec = spec
        self.variant = variant
        # The model's post-processing settings, with this variant's own over them.
        self.settings: dict[str, Any] = {**spec.postprocess, **variant.postprocess}

    @abstractmethod
    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        """Run on one HxWx3 BGR uint8 image."""

    def warmup(self, height: int = 360, width: int = 640) -> None:
        """Run once on a blank frame so the first real frame does not pay for allocation."""
        self.run(blank_frame(height, width))


@dataclass
class Prepared:
    """One frame made ready for a batched model call, with what `complete` needs afterwards."""

    tensor: np.ndarray  # 1xCxHxW: frames whose tensors share a shape can be stacked into one batch
    image: np.ndarray
    preprocess_ms: float


class BatchableTask(Task):
    """A task whose heavy part is one session call on a 1xCxHxW tensor, so frames can share a call.

    A server splits `run` into `prepare` (worker pool), a batched call of `model`
    (inference executor) and `complete` (worker pool); a device just calls `run`.
    """

    model: OnnxModel

    @property
    def can_batch(self) -> bool:
        """Whether a server may put this task's frames in one model call (see `OnnxTask.batchable`)."""
        return True

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Prepared:
        """Pre-process one HxWx3 BGR frame."""

    def prepare_part(self, image: np.ndarray, frame_size: tuple[int, int]) -> Prepared:
        """Pre-process `image`, a part of a (height, width) `frame_size` frame, at the scale the whole frame
        would run (a region request's FIND area). As a frame of its own by default: right for a model that
        runs at its input's own size."""
        return self.prepare(image)

    @abstractmethod
    def complete(self, output: np.ndarray, prepared: Prepared, inference_ms: float) -> tuple[Prediction, StageTimes]:
        """Post-process this frame's row of the model output (shape 1x...)."""

    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        prepared = self.prepare(image)
        output, inference_ms = self.model(prepared.tensor)
        return self.complete(output, prepared, inference_ms)


def timed_prepare(image: np.ndarray, preprocess: Callable[[np.ndarray], np.ndarray]) -> Prepared:
    start = time.perf_counter()
    tensor = preprocess(image)
    return Prepared(tensor=tensor, image=image, preprocess_ms=elapsed_ms(start))


def normalize(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """HxWx3 uint8 → 1x3xHxW float32 with the model's scale, mean and std.

    `(x * scale - mean) / std` folded into one multiply-add per channel, written
    straight into the channel-first tensor: 5x faster than converting, scaling,
    shifting, dividing and transposing the whole image in turn (0.5 vs 2.8 ms at
    640x352), which a server pays on its CPU for every frame.
    """
    inp = spec.input
    std = np.broadcast_to(np.asarray(inp.std, dtype=np.float32), (3,))
    gain = np.float32(inp.scale) / std
    offset = -np.broadcast_to(np.asarray(inp.mean, dtype=np.float32), (3,)) / std
    rgb = inp.color_order.upper() == "RGB"
    out = np.empty((1, 3, image.shape[0], image.shape[1]), dtype=np.float32)
    for c in range(3):
        np.multiply(image[:, :, 2 - c if rgb else c], gain[c], out=out[0, c])
        out[0, c] += offset[c]
    return out
