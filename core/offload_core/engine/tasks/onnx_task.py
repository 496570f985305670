"""The task API: your ONNX model in two methods, run the same way on the device and on the server.

Subclass `OnnxTask`, write `preprocess` (a frame into the model's input) and `postprocess` (its
outputs into a `Prediction`), and name the class in model.yaml (`task: my_app.tasks:Detector`).
The engine times each part, batches frames on a server when it can, and turns a bug in either
method into an error that names the task and the model. Two optional methods, `examples` and
`accuracy`, let the quantization toolchain and the accuracy benchmark measure the task.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import BatchableTask, OnnxModel, Prepared, elapsed_ms
from offload_core.types import Prediction, StageTimes

# onnxruntime's input type names → the numpy dtype a preprocess must return.
INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int64)": np.int64,
                "tensor(float16)": np.float16, "tensor(int32)": np.int32}  # fmt: skip


class TaskError(RuntimeError):
    """A task's own code failed or broke its contract; the message names the task and the model.

    Example (what a server answers with INTERNAL, and a client's `reason` shows):
        >>> print(TaskError("task 'my_app.tasks:Shelf' of model 'shelf': postprocess returned dict, not a Prediction"))
        task 'my_app.tasks:Shelf' of model 'shelf': postprocess returned dict, not a Prediction
    """


class OnnxTask(BatchableTask):
    """A model with one input: `preprocess` makes the input from a frame, `postprocess` reads the outputs.

    Example (a classifier; `task: my_app.tasks:Classifier` in its model.yaml):

        >>> class Classifier(OnnxTask):
        ...     def preprocess(self, image):
        ...         small = cv2.resize(image, (64, 64)).astype(np.float32) / 255
        ...         return small.transpose(2, 0, 1)[None]          # 1x3x64x64, as the model takes it
        ...     def postprocess(self, outputs, image):
        ...         scores = outputs["scores"][0]
        ...         return Prediction(classes=[ClassScore(label=self.spec.labels[int(scores.argmax())],
        ...                                               score=float(scores.max()))])
    """

    # Frames may share one model call on a server when their inputs have one shape and the graph a
    # batch axis; set False where a frame's input must run alone.
    batchable: ClassVar[bool] = True

    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant)
        self.model = model
        first = model.session.get_inputs()[0]
        self.input_shape = list(first.shape)
        self.input_dtype = INPUT_DTYPES.get(first.type)
        self.output_names = [o.name for o in model.session.get_outputs()]

    # -- what you write -------------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """One HxWx3 BGR uint8 frame → the model's input, batch axis first (1xCxHxW for most)."""
        raise NotImplementedError(f"{self.name} must define preprocess(image)")

    def postprocess(self, outputs: dict[str, np.ndarray], image: np.ndarray) -> Prediction:
        """The model's outputs for this frame (by output name, batch axis of 1 kept) → a Prediction."""
        raise NotImplementedError(f"{self.name} must define postprocess(outputs, image)")

    @classmethod
    def examples(cls, count: int, seed: int) -> list[tuple[np.ndarray, Any]]:
        """`count` frames with their ground truth (any type `accuracy` reads); another seed, other frames.

        Optional: the quantization toolchain calibrates on one seed and judges on another.
        """
        raise NotImplementedError(f"{cls.__module__}:{cls.__qualname__} defines no examples(count, seed)")

    def accuracy(self, predictions: list[Prediction], truths: list[Any]) -> float:
        """How right `predictions` are against `truths`, in [0, 1] (optional; higher is better)."""
        raise NotImplementedError(f"{self.name} defines no accuracy(predictions, truths)")

    # -- what the engine does with it -----------------------------------------------------

    @property
    def name(self) -> str:
        """ "task 'pkg.mod:Class' of model 'x'": how errors name this task."""
        return f"task {self.spec.task!r} of model {self.spec.name!r}"

    @property
    def can_batch(self) -> bool:
        return self.batchable and self.model.has_batch_axis and len(self.output_names) == 1

    def prepare(self, image: np.ndarray) -> Prepared:
        start = time.perf_counter()
        try:
            tensor = self.preprocess(image)
        except Exception as exc:
            raise TaskError(f"{self.name}: preprocess raised {type(exc).__name__}: {exc}") from exc
        self._check_input(tensor)
        return Prepared(tensor=tensor, image=image, preprocess_ms=elapsed_ms(start))

    def complete(self, output: np.ndarray, prepared: Prepared, inference_ms: float) -> tuple[Prediction, StageTimes]:
        return self._finish({self.output_names[0]: output}, prepared, inference_ms)

    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        prepared = self.prepare(image)
        outputs, inference_ms = self.infer(prepared.tensor)
        return self._finish(outputs, prepared, inference_ms)

    def infer(self, tensor: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
        """The model's outputs on one prepared input, by name, and the time the call took (ms)."""
        if len(self.output_names) == 1:
            output, inference_ms = self.model(tensor)
            return {self.output_names[0]: output}, inference_ms
        start = time.perf_counter()
        values = self.model.session.run(self.output_names, {self.model.input_name: tensor})
        return {name: np.asarray(v) for name, v in zip(self.output_names, values, strict=True)}, elapsed_ms(start)

    def _finish(
        self, outputs: dict[str, np.ndarray], prepared: Prepared, inference_ms: float
    ) -> tuple[Prediction, StageTimes]:
        start = time.perf_counter()
        try:
            prediction = self.postprocess(outputs, prepared.image)
        except Exception as exc:
            raise TaskError(f"{self.name}: postprocess raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(prediction, Prediction):
            raise TaskError(f"{self.name}: postprocess returned {type(prediction).__name__}, not a Prediction")
        return prediction, StageTimes(
            preprocess_ms=prepared.preprocess_ms, inference_ms=inference_ms, postprocess_ms=elapsed_ms(start)
        )

    def _check_input(self, tensor: object) -> None:
        """Say what is wrong with a preprocess result before onnxruntime says it less clearly."""
        if not isinstance(tensor, np.ndarray):
            raise TaskError(f"{self.name}: preprocess returned {type(tensor).__name__}, not a numpy array")
        if tensor.ndim != len(self.input_shape):
            raise TaskError(
                f"{self.name}: preprocess returned shape {list(tensor.shape)}; the model's input "
                f"{self.model.input_name!r} has {len(self.input_shape)} axes {self.input_shape}"
            )
        fixed = [(i, want) for i, want in enumerate(self.input_shape) if isinstance(want, int) and want > 0]
        if wrong := [(i, want) for i, want in fixed if tensor.shape[i] != want]:
            axis, want = wrong[0]
            raise TaskError(
                f"{self.name}: preprocess returned shape {list(tensor.shape)}; axis {axis} must be {want} "
                f"(the model's input {self.model.input_name!r} is {self.input_shape})"
            )
        if self.input_dtype is not None and tensor.dtype != self.input_dtype:
            raise TaskError(
                f"{self.name}: preprocess returned {tensor.dtype}; the model's input "
                f"{self.model.input_name!r} takes {np.dtype(self.input_dtype).name}"
            )
