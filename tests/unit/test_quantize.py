"""The quantization recipes end to end on a tiny generated convolutional model (opset 11, as PP-OCR ships)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from offload_server.quantize import recipes

pytestmark = pytest.mark.unit


def build_tiny_convnet(path: Path) -> None:
    """x (N,3,H,W) → Conv 3→8 3x3 → Relu → Conv 8→2 1x1 → Sigmoid: a miniature DBNet head, opset 11."""
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [8, 3, 3, 3], rng.normal(0, 0.5, (8, 3, 3, 3)).ravel())
    b1 = helper.make_tensor("b1", TensorProto.FLOAT, [8], rng.normal(0, 0.1, 8))
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [2, 8, 1, 1], rng.normal(0, 0.5, (2, 8, 1, 1)).ravel())
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="head"),
        helper.make_node("Sigmoid", ["c2"], ["y"], name="sigmoid"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "H", "W"])
    graph = helper.make_graph(nodes, "tiny-conv", [x], [y], initializer=[w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


@pytest.fixture
def convnet(tmp_path: Path) -> Path:
    path = tmp_path / "conv.onnx"
    build_tiny_convnet(path)
    return path


def calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32) for _ in range(8)]


@pytest.mark.parametrize("recipe", ["int8-qdq-pc", "int8-qdq-pt"])
def test_static_int8_upgrades_the_opset_quantizes_and_stays_close(convnet: Path, tmp_path: Path, recipe: str) -> None:
    out, cache = tmp_path / f"conv.{recipe}.onnx", tmp_path / "calibration.json"
    recipes.build(recipe, convnet, out, cache, calibration())
    model = onnx.load(str(out))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= recipes.MIN_QDQ_OPSET
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)  # batch 2: dynamic axes survive
    assert np.abs(run(out, x) - run(convnet, x)).max() < 0.05
    assert cache.is_file()


def test_rebuilding_from_the_calibration_cache_is_byte_identical(convnet: Path, tmp_path: Path) -> None:
    """What lets model.yaml record a quantized file's sha256 and `make models` reproduce it."""
    cache = tmp_path / "calibration.json"
    recipes.build("int8-qdq-pc", convnet, tmp_path / "a.onnx", cache, calibration())
    recipes.build("int8-qdq-pc", convnet, tmp_path / "b.onnx", cache, None)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.onnx", "b.onnx")]
    assert digest[0] == digest[1]


def test_keep_float_leaves_the_named_node_unquantized(convnet: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed.onnx"
    recipes.build("int8-qdq-pc", convnet, out, tmp_path / "calibration.json", calibration(), keep_float=["head"])
    model = onnx.load(str(out))
    head = next(n for n in model.graph.node if n.name == "head")
    # A quantized Conv reads a dequantized weight; a float one still reads the fp32 initializer.
    assert "w2" in head.input


def test_fp16_halves_the_weights_and_keeps_float_inputs(convnet: Path, tmp_path: Path) -> None:
    out = tmp_path / "conv.fp16.onnx"
    recipes.build("fp16", convnet, out, tmp_path / "unused.json")
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    assert np.abs(run(out, x) - run(convnet, x)).max() < 0.01


def test_static_without_ranges_says_how_to_get_them(convnet: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="offload-server quantize"):
        recipes.build("int8-qdq-pc", convnet, tmp_path / "x.onnx", tmp_path / "missing.json", None)


def test_dynamic_int8_applies_only_where_there_are_matmuls(convnet: Path) -> None:
    assert "int8-dynamic" not in recipes.applicable(convnet)


def build_wide_convnet(path: Path) -> None:
    """x → Conv 3→64 3x3 → Relu → MatMul over the channels (64x16): weights large enough to be stored as int8."""
    rng = np.random.default_rng(4)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [64, 3, 3, 3], rng.normal(0, 0.3, (64, 3, 3, 3)).ravel())
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [64, 16], rng.normal(0, 0.3, (64, 16)).ravel())
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Transpose", ["r1"], ["t1"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("MatMul", ["t1", "w2"], ["y"], name="project"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "H", "W", 16])
    graph = helper.make_graph(nodes, "wide-conv", [x], [y], initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    path = tmp_path / "wide.onnx"
    build_wide_convnet(path)
    return path


def test_int8_weights_stores_int8_weights_needs_no_calibration_and_stays_close(wide: Path, tmp_path: Path) -> None:
    from offload_core.engine.session import SessionConfig, create_session

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    recipes.build("int8-weights", wide, a, tmp_path / "never-written.json")
    recipes.build("int8-weights", wide, b, tmp_path / "never-written.json")
    assert a.read_bytes() == b.read_bytes()  # no calibration: the fp32 file alone fixes the bytes
    assert not (tmp_path / "never-written.json").exists()
    model = onnx.load(str(a))
    stored = {t.name: t.data_type for t in model.graph.initializer}
    assert stored["w1_int8"] == TensorProto.INT8 and stored["w2_int8"] == TensorProto.INT8
    assert "QuantizeLinear" not in {n.op_type for n in model.graph.node}  # activations stay float
    assert a.stat().st_size < wide.stat().st_size / 2.5
    x = np.random.default_rng(5).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    reference = run(wide, x)
    for folded in (False, True):  # onnxruntime runs it either way; folded is how the engine loads it
        session = create_session(a, SessionConfig(providers=["CPUExecutionProvider"]), float_weights=folded)
        out = np.asarray(session.run(None, {"x": x})[0])
        assert np.abs(out - reference).max() < 0.02 * np.abs(reference).max()


def test_a_palette_stores_k_values_and_an_index_per_weight_and_compresses(wide: Path, tmp_path: Path) -> None:
    from offload_core.model_transfer import compress

    int8, palette = tmp_path / "int8.onnx", tmp_path / "palette.onnx"
    recipes.build("int8-weights", wide, int8, tmp_path / "unused.json")
    recipes.build("palette16", wide, palette, tmp_path / "unused.json")
    again = tmp_path / "again.onnx"
    recipes.build("palette16", wide, again, tmp_path / "unused.json")
    assert palette.read_bytes() == again.read_bytes()  # k-means from the quantiles: the same bytes every time
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(palette)).graph.initializer}
    assert stored["w1_index"].dtype == np.uint8 and stored["w1_index"].max() < 16 and stored["w1_palette"].size == 16
    # An index is a byte on disk (no smaller than int8), but 4 bits of entropy: the download shrinks.
    assert len(compress(palette.read_bytes())) < 0.85 * len(compress(int8.read_bytes()))
    x = np.random.default_rng(5).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    reference = run(wide, x)
    assert np.abs(run(palette, x) - reference).max() < 0.2 * np.abs(reference).max()


def test_a_palette_keeps_the_named_layers_as_int8(wide: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixed.onnx"
    conv = next(n.name for n in onnx.load(str(wide)).graph.node if n.input[1:2] == ["w2"])
    recipes.build("palette16", wide, out, tmp_path / "unused.json", keep_float=[conv])
    names = {t.name for t in onnx.load(str(out)).graph.initializer}
    assert {"w1_index", "w1_palette", "w2_int8"} <= names and "w2_index" not in names


def test_pruning_zeroes_that_share_of_every_output_channel(wide: Path) -> None:
    model = recipes.pruned(onnx.load(str(wide)), 0.5, set())
    for name, axis in (("w1", 0), ("w2", 1)):  # a Conv's output channels are its first axis, a MatMul's its last
        w = next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)
        per_channel = (np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1) == 0).mean(axis=1)
        assert np.all(per_channel >= 0.5) and np.all(per_channel < 0.6), per_channel
