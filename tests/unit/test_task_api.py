"""The public task API: how a model.yaml's `task` is found, what a task may return, and its errors."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import offload_core
from offload_core import ClassScore, OnnxTask, Prediction, TaskError, Tensor
from offload_core.engine import ModelRepository
from offload_core.engine.spec import TaskKind
from offload_core.engine.tasks.registry import TaskNotFoundError, installed_tasks, task_class
from offload_core.proto import offload_pb2 as pb
from offload_core.wire import prediction_from_pb, prediction_to_pb

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", offload_core.__all__[:-1])  # all but __version__
def test_every_public_name_has_a_docstring_whose_examples_run(name: str) -> None:
    obj = getattr(offload_core, name)
    assert ">>>" in (obj.__doc__ or ""), f"{name} needs a docstring with an example"
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner()
    for test in finder.find(obj, name, globs=vars(offload_core) | {"np": np, "cv2": cv2}):
        runner.run(test)
    assert runner.failures == 0, f"an example of {name} fails"


def test_built_in_tasks_are_entry_points_found_like_any_other() -> None:
    assert set(installed_tasks()) >= {k.value for k in TaskKind}
    for kind in TaskKind:
        assert task_class(kind.value).__module__.startswith("offload_core.engine.tasks.")


def test_an_import_path_names_a_users_task_and_bad_names_say_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop_tasks.py").write_text("from offload_core import OnnxTask\nclass Shelf(OnnxTask): pass\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert task_class("shop_tasks:Shelf", "shelf").__name__ == "Shelf"
    with pytest.raises(TaskNotFoundError, match=r"model 'shelf' names task 'shop_taks:Shelf', but 'shop_taks' cannot"):
        task_class("shop_taks:Shelf", "shelf")
    with pytest.raises(TaskNotFoundError, match="has no 'Shelves'"):
        task_class("shop_tasks:Shelves", "shelf")
    with pytest.raises(TaskNotFoundError, match=r"not a subclass of offload_core\.OnnxTask"):
        task_class("shop_tasks:X", "shelf")
    with pytest.raises(TaskNotFoundError, match=r"not an installed task \(classification, face-detection"):
        task_class("segmentation", "shelf")
    sys.modules.pop("shop_tasks", None)


def test_tensors_cross_the_wire_and_json_unchanged() -> None:
    mask = (np.arange(12).reshape(3, 4) % 3 == 0).astype(np.uint8)
    embedding = np.linspace(-1, 1, 5, dtype=np.float32)
    sent = Prediction(classes=[ClassScore(label="a", score=0.5)],
                      tensors=[Tensor.of("mask", mask), Tensor.of("embedding", embedding)])  # fmt: skip
    response = pb.InferResponse()
    prediction_to_pb(sent, response)
    got = prediction_from_pb(pb.InferResponse.FromString(response.SerializeToString()))
    assert got == sent and np.array_equal(got.tensors[0].array(), mask)
    assert got.tensors[1].array().dtype == np.float32 and np.allclose(got.tensors[1].array(), embedding)
    assert Prediction.model_validate_json(sent.model_dump_json()) == sent  # telemetry lines carry them as base64


class Colour(OnnxTask):
    """The tiny colour classifier of conftest, on the public API."""

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:8, :8, ::-1].transpose(2, 0, 1)[None], np.float32) / 255

    def postprocess(self, outputs: dict[str, np.ndarray], image: np.ndarray) -> Prediction:
        probs = outputs["probs"][0]
        return Prediction(classes=[ClassScore(label=self.spec.labels[int(probs.argmax())], score=float(probs.max()))])


def colour_task(tiny_repo: Path, cls: type[OnnxTask]) -> OnnxTask:
    loaded = ModelRepository(tiny_repo).load("tiny")  # the tiny model's session, under another task class
    assert isinstance(loaded, OnnxTask)
    return cls(loaded.spec, loaded.variant, loaded.model)


def test_a_user_task_runs_and_times_its_parts(tiny_repo: Path) -> None:
    green = np.zeros((16, 16, 3), np.uint8)
    green[..., 1] = 255
    prediction, stages = colour_task(tiny_repo, Colour).run(green)
    assert prediction.classes[0].label == "green" and stages.inference_ms > 0


@pytest.mark.parametrize(
    ("preprocess", "says"),
    [
        (lambda image: np.zeros((3, 8, 8), np.float32), r"preprocess returned shape \[3, 8, 8\]; .* has 4 axes"),
        (lambda image: np.zeros((1, 4, 8, 8), np.float32), r"preprocess returned .* axis 1 must be 3"),
        (lambda image: np.zeros((1, 3, 8, 8), np.float64), "preprocess returned float64; .* takes float32"),
        (lambda image: [[0.0]], "preprocess returned list, not a numpy array"),
        (lambda image: 1 / 0, "preprocess raised ZeroDivisionError"),
    ],
)
def test_a_preprocess_bug_gets_an_error_naming_the_task_and_model(tiny_repo: Path, preprocess, says: str) -> None:  # type: ignore[no-untyped-def]
    task = colour_task(tiny_repo, Colour)
    task.preprocess = preprocess  # type: ignore[method-assign]
    with pytest.raises(TaskError, match=f"task 'classification' of model 'tiny': {says}"):
        task.run(np.zeros((16, 16, 3), np.uint8))


def test_a_postprocess_returning_the_wrong_type_is_named(tiny_repo: Path) -> None:
    task = colour_task(tiny_repo, Colour)
    task.postprocess = lambda outputs, image: outputs  # type: ignore[method-assign,assignment,return-value]
    with pytest.raises(TaskError, match="postprocess returned dict, not a Prediction"):
        task.run(np.zeros((16, 16, 3), np.uint8))


def test_the_face_detectors_accuracy_is_f1_over_frames_matching_each_face_once() -> None:
    from offload_core.engine.tasks.face_detection import FaceDetection, matches

    def face(x1: float, y1: float, x2: float, y2: float) -> offload_core.Box:
        return offload_core.Box(points=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)], label="face")

    truth = [[(0, 0, 10, 10), (20, 20, 30, 30)], [(5, 5, 15, 15)]]
    found = [Prediction(boxes=[face(1, 1, 10, 10), face(0, 0, 9, 9), face(50, 50, 60, 60)]), Prediction()]
    # Frame 1: two boxes on the first face (one counts), one on nothing; the second face and frame 2's missed.
    assert matches([(1, 1, 10, 10), (0, 0, 9, 9)], [(0, 0, 10, 10)]) == 1
    f1 = FaceDetection.accuracy(None, found, truth)  # type: ignore[arg-type]  # reads neither model nor spec
    assert f1 == pytest.approx(2 * 1 / (3 + 3))
