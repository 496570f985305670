"""A task from outside the package (an `OnnxTask` named by import path) on a real server and client.

A bug in it — it raises, returns the wrong type, makes an input the model cannot take, or is too
slow — gets an error that names the task and the model; the server keeps serving the other
models; and the client's frame is still answered, by the other path.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from offload_client import OffloadClient, Where
from offload_core.engine import ModelRepository
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_core.wire import jpeg_request
from offload_server import Settings
from offload_server.testing import serve_in_thread
from tests.conftest import TINY_LABELS, build_tiny_classifier

pytestmark = pytest.mark.integration

TASKS = """
import time

import numpy as np

from offload_core import ClassScore, OnnxTask, Prediction, Tensor


class Colour(OnnxTask):
    def preprocess(self, image):
        return np.ascontiguousarray(image[:8, :8, ::-1].transpose(2, 0, 1)[None], np.float32) / 255

    def postprocess(self, outputs, image):
        probs = outputs["probs"][0]
        best = int(probs.argmax())
        return Prediction(classes=[ClassScore(label=self.spec.labels[best], score=float(probs[best]))],
                          tensors=[Tensor.of("probs", probs)])


class Scored(Colour):  # with what the toolchain and bench-accuracy need: frames with their truth, a score

    @classmethod
    def examples(cls, count, seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(count):
            channel = int(rng.integers(3))
            frame = np.zeros((16, 16, 3), np.uint8)
            frame[..., 2 - channel] = 200  # BGR: channel 0 of the RGB model is red
            out.append((frame, ["red", "green", "blue"][channel]))
        return out

    def accuracy(self, predictions, truths):
        return sum(p.classes[0].label == t for p, t in zip(predictions, truths)) / len(truths)


class Raises(Colour):
    def postprocess(self, outputs, image):
        if image[..., 2].mean() > image[..., 0].mean() + 50:  # red frames fail; grey warm-up frames pass
            raise ZeroDivisionError("a bug in the user's code")
        return super().postprocess(outputs, image)


class WrongType(Colour):
    def postprocess(self, outputs, image):
        return {"label": "red"}


class WrongShape(Colour):
    def preprocess(self, image):
        return np.zeros((3, 8, 8), np.float32)


class Slow(Colour):
    def postprocess(self, outputs, image):
        time.sleep(1.5)
        return super().postprocess(outputs, image)
"""
MODELS = {"colour": "Colour", "scored": "Scored", "raises": "Raises", "wrong-type": "WrongType",
          "wrong-shape": "WrongShape", "slow": "Slow"}  # fmt: skip


def write_repo(root: Path, module: str, classes: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    onnx_file = root / "model.onnx"
    build_tiny_classifier(onnx_file)
    for name, cls in classes.items():
        (root / name).mkdir()
        shutil.copy(onnx_file, root / name / "model.onnx")
        spec = {"name": name, "task": f"{module}:{cls}", "labels": TINY_LABELS,
                "variants": [{"name": "fp32", "file": "model.onnx"}], "server_variant": "fp32",
                "device_variant": "fp32"}  # fmt: skip
        (root / name / "model.yaml").write_text(yaml.safe_dump(spec))
    onnx_file.unlink()
    return root


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding the task module (on sys.path) and a repository of one model per class."""
    where = tmp_path_factory.mktemp("plugin")
    (where / "user_tasks.py").write_text(TASKS)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(where))
        write_repo(where / "models", "user_tasks", MODELS)
        yield where


@pytest.fixture(scope="module")
def stub(plugin: Path) -> Iterator[pb_grpc.OffloadStub]:
    settings = Settings(grpc_port=0, http_port=0, models_dir=plugin / "models")
    with serve_in_thread(settings) as server:
        yield pb_grpc.OffloadStub(grpc.insecure_channel(server.grpc_target))
        assert server.service.broken.keys() == {"wrong-type", "wrong-shape"}  # they fail on the warm-up frame


RED = np.zeros((64, 64, 3), np.uint8)
RED[..., 2] = 255  # BGR


def ask(stub: pb_grpc.OffloadStub, model: str) -> pb.InferResponse:
    request, _ = jpeg_request(model, 0, RED, 95, 5000)
    return stub.Infer(request, timeout=30)


def test_a_plugged_in_task_serves_typed_results_with_its_tensors(stub: pb_grpc.OffloadStub) -> None:
    reply = ask(stub, "colour")
    assert [c.label for c in reply.classes] == ["red"]
    (probs,) = reply.tensors
    assert probs.name == "probs" and probs.dtype == "float32" and list(probs.shape) == [3]


@pytest.mark.parametrize(
    ("model", "code", "says"),
    [
        ("raises", grpc.StatusCode.INTERNAL, "postprocess raised ZeroDivisionError: a bug in the user's code"),
        ("wrong-type", grpc.StatusCode.FAILED_PRECONDITION, "postprocess returned dict, not a Prediction"),
        ("wrong-shape", grpc.StatusCode.FAILED_PRECONDITION, "preprocess returned shape [3, 8, 8]"),
    ],
)
def test_a_buggy_task_gets_an_error_naming_it_and_the_others_keep_serving(
    stub: pb_grpc.OffloadStub, model: str, code: grpc.StatusCode, says: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        ask(stub, model)
    assert caught.value.code() == code
    assert "'user_tasks:" in caught.value.details() and f"model {model!r}" in caught.value.details()
    assert says in caught.value.details()
    assert [c.label for c in ask(stub, "colour").classes] == ["red"]


def test_the_client_answers_from_the_device_when_the_servers_task_fails(plugin: Path, tmp_path: Path) -> None:
    """The server's `raises` task fails on red frames; the device runs a working task of that name."""
    device = write_repo(tmp_path / "device", "user_tasks", {"raises": "Colour", "slow": "Colour"})
    settings = Settings(grpc_port=0, http_port=0, models_dir=plugin / "models", models=["raises", "slow"])
    with serve_in_thread(settings) as server:
        with OffloadClient(server.grpc_target, model="raises", policy="always-remote", models_dir=device) as oc:
            result = oc.infer(RED)
        assert result.where == Where.LOCAL and [c.label for c in result.classes] == ["red"]
        assert "INTERNAL" in result.reason and "postprocess raised ZeroDivisionError" in result.reason
        # Too slow: the server takes 1.5 s a frame; within a 300 ms deadline the device answers.
        with OffloadClient(
            server.grpc_target, model="slow", policy="adaptive", deadline_ms=300, models_dir=device
        ) as oc:
            slow = oc.infer(RED)
        assert slow.where == Where.LOCAL and [c.label for c in slow.classes] == ["red"]
        assert slow.latency_ms < 1200, slow


def test_the_server_answers_when_the_devices_task_fails(plugin: Path, tmp_path: Path) -> None:
    """The device's task of this model raises on red frames; the server's works: the frame is sent."""
    device = write_repo(tmp_path / "device", "user_tasks", {"colour": "Raises"})
    settings = Settings(grpc_port=0, http_port=0, models_dir=plugin / "models", models=["colour"])
    with (
        serve_in_thread(settings) as server,
        OffloadClient(server.grpc_target, model="colour", policy="always-local", models_dir=device) as oc,
    ):
        result = oc.infer(RED)
        oc.privacy = "local-only"
        private = oc.infer(RED)
    assert result.where == Where.REMOTE and [c.label for c in result.classes] == ["red"], result
    assert "the device model failed (TaskError: task 'user_tasks:Raises' of model 'colour'" in result.reason
    assert result.tensors[0].array().shape == (3,)
    # Privacy first: in local-only the frame stays, and its result says why it has no answer.
    assert private.where == Where.NONE and private.uplink_bytes == 0 and "device model failed" in (private.error or "")


def test_bench_accuracy_measures_and_records_a_plugged_in_task(plugin: Path, tmp_path: Path) -> None:
    """`make bench-accuracy MODEL=scored`: the task's own examples and accuracy, written into its model.yaml."""
    from bench import task_accuracy

    repo = write_repo(tmp_path / "models", "user_tasks", {"scored": "Scored"})
    args = argparse.Namespace(model="scored", models_dir=repo, frames=6, seeds=None, out=tmp_path / "acc.json",
                              record=True, rapidocr_wheel=None)  # fmt: skip
    assert task_accuracy.main(args) == 0
    rows = {r["contender"]: r for r in json.loads((tmp_path / "acc.json").read_text())["rows"]}
    assert rows["fp32"]["accuracy"] == 1.0 and "candidate int8-weights" in rows and "jpeg-q35" in rows
    recorded = yaml.safe_load((repo / "scored" / "model.yaml").read_text())["variants"][0]
    assert recorded["accuracy"] == 1.0 and recorded["latency_ms"] > 0 and set(recorded["jpeg_accuracy"]) >= {90, 35}
    assert ModelRepository(repo).spec("scored").variant().jpeg_accuracy[35] == 1.0  # still a valid model.yaml
