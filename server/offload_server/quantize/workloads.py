"""What each task feeds a calibrator and how its accuracy is measured, on sample-video frames with ground truth.

Calibration and evaluation use different seeds, and neither is a seed that tests or
`bench-policy` use: a variant is never judged on the frames it was calibrated on.

A task with its own `examples` and `accuracy` needs nothing more than offload-core. The built-in text
and face models are measured on the tools' sample frames (offload_tools, in offload-client[cli]): the
`quantize` extra installs them, so that a server that only serves depends on offload-core alone.
"""

from __future__ import annotations

import functools
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from offload_core.engine.geometry import crop_quad
from offload_core.engine.spec import ModelSpec
from offload_core.engine.tasks.base import Task
from offload_core.engine.tasks.onnx_task import OnnxTask
from offload_core.engine.tasks.text_detection import TextDetection, detection_input
from offload_core.engine.tasks.text_recognition import TextRecognition, line_batch
from offload_core.types import Box, Prediction

if TYPE_CHECKING:
    from offload_tools.sample import GroundTruth, Style

CALIBRATION_SEED = 101
TUNING_FRAMES = 30  # calibration-seed frames a recognizer's search (e.g. which layers take a palette) reads
EVALUATION_SEED = 202
# The real-photo sample at a phone's VGA: photographs, words down to 8 px, JPEG artefacts. Small words are
# where int8 and small input sizes lose accuracy, so this is where the picker must see the loss.
STYLE: Style = "real"
NEEDS_TOOLS = (
    "quantizing a built-in model measures it on the sample frames of offload_tools: "
    "pip install 'offload-server[quantize]' (it brings offload-client[cli])"
)


def sample_frames(seed: int, frames: int) -> tuple[list[np.ndarray], GroundTruth]:
    """`frames` frames of the real-photo sample and their truth (the tools' renderer, imported on use)."""
    try:
        from offload_tools.sample import DEFAULT_SIZE, render_frames
    except ImportError:
        raise ImportError(NEEDS_TOOLS) from None
    width, height = DEFAULT_SIZE[STYLE]
    return render_frames(seed, frames, width, height, STYLE)


def detection_f1(truths: list[list[Any]], found: list[list[Box]]) -> float:
    """Detection F1 at IoU >= 0.5 over frames: each frame's truth words (or boxes) against the boxes found."""
    from offload_tools.evaluation import score_frame, total
    from offload_tools.sample import WordTruth

    words = [[w if isinstance(w, WordTruth) else WordTruth(text="", quad=w.points) for w in t] for t in truths]
    return total(score_frame(t, boxes, []) for t, boxes in zip(words, found, strict=True)).f1


@dataclass
class Measured:
    """One candidate's numbers; `outputs` are kept only to compare with the reference."""

    latency_ms: float
    accuracy: float
    outputs: list[object]


def held_out(frames: int) -> tuple[list[np.ndarray], GroundTruth]:
    return sample_frames(EVALUATION_SEED, frames)


def calibration_frames(frames: int) -> tuple[list[np.ndarray], GroundTruth]:
    return sample_frames(CALIBRATION_SEED, frames)


def word_crops(frames: list[np.ndarray], truth: GroundTruth) -> tuple[list[np.ndarray], list[str]]:
    crops, words = [], []
    for frame, ft in zip(frames, truth.frames, strict=True):
        for w in ft.words:
            crops.append(crop_quad(frame, np.array(w.quad, dtype=np.float32)))
            words.append(w.text)
    return crops, words


def median_ms(run: Callable[[Any], object], items: list[Any], repeats: int) -> float:
    """Median wall time of `run(item)` over items × repeats, after warming up on the first two items."""
    for item in items[:2]:
        run(item)
    times = []
    for _ in range(repeats):
        for item in items:
            start = time.perf_counter()
            run(item)
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


class Workload(ABC):
    """A task kind's calibration inputs, accuracy measure and agreement with a reference."""

    sizes: list[int | None]  # input sizes to try, the full size first (None: the model's only size)

    def __init__(self, spec: ModelSpec, repeats: int) -> None:
        self.spec = spec
        self.repeats = repeats

    @abstractmethod
    def calibration(self) -> list[np.ndarray]:
        """Input tensors for the calibrator."""

    @abstractmethod
    def calibration_at(self, size: int | None) -> list[np.ndarray]:
        """A few calibration inputs at one size, for the per-layer sensitivity search."""

    @abstractmethod
    def measure(self, task: Task) -> Measured:
        """Latency (median ms per frame) and accuracy in [0, 1] on the held-out frames."""

    @abstractmethod
    def agreement(self, outputs: list[object], reference: list[object]) -> float:
        """How often this candidate says what the fp32 model at full size says, in [0, 1]."""

    @abstractmethod
    def tuning_accuracy(self, task: Task) -> float:
        """Accuracy on the calibration frames, for searches that must not see the frames that judge them."""


class TextWorkload(Workload):
    """A text model's workload: held-out and calibration frames of the real-photo sample."""

    # Held-out frames per frame asked for: the set must resolve the accuracy budget (2 points). 12 frames
    # hold ~36 words, so one word or box was ~3 points; a palette that read 36 of 36 words read 4 points
    # fewer than int8 on another seed's 114, and a palette detector at 640 "beat" fp32 at 640 by 19 points.
    held_out_per_frame = 1

    def __init__(self, spec: ModelSpec, frames: int, repeats: int) -> None:
        super().__init__(spec, repeats)
        self.frames, self.truth = held_out(self.held_out_per_frame * frames)
        self.calib_frames, self.calib_truth = calibration_frames(max(4, frames // 2))


class DetectionWorkload(TextWorkload):
    """Detection F1 at IoU ≥ 0.5 against the ground-truth word boxes."""

    held_out_per_frame = 3  # ~110 boxes

    def __init__(self, spec: ModelSpec, frames: int, repeats: int) -> None:
        super().__init__(spec, frames, repeats)
        self.sizes = [960, 640, 480, 320]

    def calibration(self) -> list[np.ndarray]:
        return [detection_input(f, size, self.spec) for size in (960, 640) for f in self.calib_frames]

    def calibration_at(self, size: int | None) -> list[np.ndarray]:
        return [detection_input(f, size or 960, self.spec) for f in self.calib_frames[:4]]

    def measure(self, task: Task) -> Measured:
        assert isinstance(task, TextDetection)
        outputs = [task.run(f)[0].boxes for f in self.frames]
        latency = median_ms(task.run, self.frames, self.repeats)
        return Measured(latency, detection_f1([ft.words for ft in self.truth.frames], outputs), list(outputs))

    def agreement(self, outputs: list[object], reference: list[object]) -> float:
        assert all(isinstance(boxes, list) for boxes in [*outputs, *reference])
        return detection_f1(reference, outputs)  # type: ignore[arg-type]

    def tuning_accuracy(self, task: Task) -> float:
        found = [task.run(f)[0].boxes for f in self.calib_frames]
        return detection_f1([ft.words for ft in self.calib_truth.frames], found)


class RecognitionWorkload(TextWorkload):
    """Word accuracy: the exact word read from each ground-truth crop."""

    held_out_per_frame = 4  # ~140 words; a word is cheap to read

    def __init__(self, spec: ModelSpec, frames: int, repeats: int) -> None:
        super().__init__(spec, frames, repeats)
        self.sizes = [None]  # PP-OCR's recognizer reads lines 48 pixels high
        self.crops, self.words = word_crops(self.frames, self.truth)
        self.calib_crops, _ = word_crops(self.calib_frames, self.calib_truth)

    def calibration(self) -> list[np.ndarray]:
        min_width = int(self.spec.postprocess.get("min_width", 320))
        return [line_batch([c], 48, min_width) for c in self.calib_crops]

    def calibration_at(self, size: int | None) -> list[np.ndarray]:
        return self.calibration()[:16]

    def measure(self, task: Task) -> Measured:
        assert isinstance(task, TextRecognition)
        texts, accuracy = self._read(task, self.crops, self.words)
        per_frame = [[c] for c in self.crops]  # one word crop per call, as the spotter's smallest batch
        latency = median_ms(task.recognize, per_frame, self.repeats)
        return Measured(latency, accuracy, list(texts))

    def agreement(self, outputs: list[object], reference: list[object]) -> float:
        return sum(a == b for a, b in zip(outputs, reference, strict=True)) / max(1, len(reference))

    def tuning_accuracy(self, task: Task) -> float:
        return self._read(task, *self._tuning_words)[1]

    @functools.cached_property
    def _tuning_words(self) -> tuple[list[np.ndarray], list[str]]:
        """Word crops of the calibration seed, made on first use (only a search needs them). More than the
        calibrator's few frames: on 6 frames one word is ~6 points, and a search that kept them all
        still lost words held out."""
        return word_crops(*calibration_frames(TUNING_FRAMES))

    @staticmethod
    def _read(task: Task, crops: list[np.ndarray], words: list[str]) -> tuple[list[str], float]:
        """What `task` reads on the crops, and the share read exactly right."""
        assert isinstance(task, TextRecognition)
        read, _ = task.recognize(crops)
        texts = [t.strip() for t, _ in read]
        return texts, sum(t == w for t, w in zip(texts, words, strict=True)) / max(1, len(words))


Examples = Callable[[int, int], list[tuple[np.ndarray, Any]]]


def face_examples(count: int, seed: int) -> list[tuple[np.ndarray, Any]]:
    """Street frames with real faces pasted in (`offload_tools.faces`), and each face's rectangle."""
    try:
        from offload_tools.faces import face_frames
    except ImportError:
        raise ImportError(NEEDS_TOOLS) from None
    frames, _ = face_frames(seed, count)
    return [(f.image, f.faces) for f in frames]


# Built-in tasks whose frames live in the tools (the core cannot import them): the same workload as a
# user's task, with these examples instead of the task's own.
EXAMPLES: dict[str, Examples] = {"face-detection": face_examples}


class ExamplesWorkload(Workload):
    """Any `OnnxTask` that defines `examples` and `accuracy`: a model this project has never seen.

    It calibrates on its own preprocess of one seed's frames and is judged on another seed's;
    agreement is the share of frames where a candidate gives the fp32 model's answer (`same_answer`).
    """

    def __init__(self, reference: OnnxTask, frames: int, repeats: int, examples: Examples | None = None) -> None:
        super().__init__(reference.spec, repeats)
        self.sizes = [None]  # the task's preprocess decides the input size
        self.reference = reference
        examples = examples or type(reference).examples
        held = examples(frames, EVALUATION_SEED)
        self.frames, self.truths = [f for f, _ in held], [t for _, t in held]
        calibration = examples(max(4, frames // 2), CALIBRATION_SEED)
        self.calib_frames, self.calib_truths = [f for f, _ in calibration], [t for _, t in calibration]

    def calibration(self) -> list[np.ndarray]:
        return [self.reference.prepare(f).tensor for f in self.calib_frames]

    def calibration_at(self, size: int | None) -> list[np.ndarray]:
        return self.calibration()[:8]

    def measure(self, task: Task) -> Measured:
        assert isinstance(task, OnnxTask)
        outputs = [task.run(f)[0] for f in self.frames]
        latency = median_ms(task.run, self.frames, self.repeats)
        return Measured(latency, task.accuracy(outputs, self.truths), list(outputs))

    def agreement(self, outputs: list[object], reference: list[object]) -> float:
        same = [same_answer(a, b) for a, b in zip(outputs, reference, strict=True)]  # type: ignore[arg-type]
        return sum(same) / max(1, len(same))

    def tuning_accuracy(self, task: Task) -> float:
        assert isinstance(task, OnnxTask)
        return task.accuracy([task.run(f)[0] for f in self.calib_frames], self.calib_truths)


def same_answer(a: Prediction, b: Prediction) -> bool:
    """The same top label, the same number of boxes, the same words, and tensors of the same argmax."""
    if [c.label for c in a.classes[:1]] != [c.label for c in b.classes[:1]] or len(a.boxes) != len(b.boxes):
        return False
    if [t.text for t in a.texts] != [t.text for t in b.texts] or len(a.tensors) != len(b.tensors):
        return False
    return all(
        x.shape == y.shape and np.array_equal(np.argmax(x.array(), axis=-1), np.argmax(y.array(), axis=-1))
        for x, y in zip(a.tensors, b.tensors, strict=True)
    )
