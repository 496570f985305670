"""Shared fixtures: a tiny generated model repository, sample frames, and one real server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from offload_core.engine.repository import default_models_dir
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread
from offload_tools.sample import GroundTruth, render_frames

# The model reads RGB (its spec says so), so channel 0 is red.
TINY_LABELS = ["red", "green", "blue"]


def build_tiny_classifier(path: Path) -> None:
    """A 3-class "colour" classifier: mean of each channel → identity → softmax. Opset 13."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3], np.eye(3, dtype=np.float32).ravel() * 10)
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[weight, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding one generated ONNX classifier, `tiny`."""
    root = tmp_path_factory.mktemp("models")
    (root / "tiny").mkdir()
    build_tiny_classifier(root / "tiny" / "model.onnx")
    digest = hashlib.sha256((root / "tiny" / "model.onnx").read_bytes()).hexdigest()
    spec = {
        "name": "tiny",
        "task": "classification",
        "input": {"name": "x", "color_order": "RGB", "mean": [0, 0, 0], "std": [1, 1, 1], "size": [8, 8]},
        "labels": TINY_LABELS,
        "postprocess": {"top_k": 3},
        "variants": [{"name": "fp32", "file": "model.onnx", "sha256": digest}],
        "server_variant": "fp32",
        "device_variant": "fp32",
    }
    (root / "tiny" / "model.yaml").write_text(yaml.safe_dump(spec))
    return root


@pytest.fixture(scope="session")
def models_dir() -> Path:
    root = default_models_dir()
    if not (root / "text-detector" / "det.onnx").exists():
        pytest.fail("the PP-OCR models are missing: run `make models` (make test does it)")
    return root


@pytest.fixture(scope="session")
def sample() -> tuple[list[np.ndarray], GroundTruth]:
    """24 frames of the synthetic street scene with their ground truth."""
    return render_frames(seed=11, frames=24)


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[OffloadServer]:
    """One real offload-server (gRPC + HTTP) on free ports, shared by the integration tests."""
    # Client and server share this machine's cores here: a server whose idle threads spin would take the
    # device model's CPU, which on two machines it cannot; so this one does not spin.
    settings = Settings(
        grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter", "text-orientation"], spin_wait=False
    )
    with serve_in_thread(settings) as running:
        yield running
