"""Trimming a CTC recognizer's head to one script, on a tiny generated recognizer with PP-OCR's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from offload_core.engine.tasks.text_recognition import alphabet_from_metadata
from offload_server.quantize import recipes
from offload_server.quantize.alphabet import trimmed

pytestmark = pytest.mark.unit

DICTIONARY = ["a", "中", "b", "文", "C", "é", "字"]  # PP-OCR's file: blank, these, then the space
FEATURES = 64  # wide enough that the head's weight is stored small (recipes.SMALLEST_WEIGHT)


def build_recognizer(path: Path) -> None:
    """x (N, T, 64) → MatMul (64 x classes) → Add → Softmax, with the dictionary in the `character` metadata."""
    classes = len(DICTIONARY) + 2
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [FEATURES, classes], rng.normal(0, 1, (FEATURES, classes)).ravel())
    b = helper.make_tensor("b", TensorProto.FLOAT, [classes], rng.normal(0, 0.1, classes))
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["logits"], name="head"),
        helper.make_node("Add", ["logits", "b"], ["biased"], name="bias"),
        helper.make_node("Softmax", ["biased"], ["y"], axis=-1, name="softmax"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", FEATURES])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", classes])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny-rec", [x], [y], initializer=[w, b]),
        opset_imports=[helper.make_opsetid("", 11)],
    )
    model.ir_version = 7
    helper.set_model_props(model, {"character": "\n".join(DICTIONARY)})
    onnx.save(model, str(path))


def read(path: Path, x: np.ndarray) -> tuple[list[str], np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    alphabet = alphabet_from_metadata(session.get_modelmeta().custom_metadata_map["character"])
    return alphabet, np.asarray(session.run(None, {"x": x})[0])


def test_the_trimmed_head_scores_only_the_scripts_characters_in_the_same_order(tmp_path: Path) -> None:
    full, latin = tmp_path / "rec.onnx", tmp_path / "rec.latin.onnx"
    build_recognizer(full)
    recipes.trimmed_source(full, "latin", latin)
    x = np.random.default_rng(1).normal(0, 1, (2, 40, FEATURES)).astype(np.float32)
    full_alphabet, full_p = read(full, x)
    latin_alphabet, latin_p = read(latin, x)
    assert latin_alphabet == ["<blank>", "a", "b", "C", "é", " "]
    kept = [full_alphabet.index(c) for c in latin_alphabet]
    # Same logits for every kept class: the softmax over fewer classes keeps their order at every step.
    assert np.array_equal(np.argsort(latin_p, axis=-1), np.argsort(full_p[..., kept], axis=-1))
    ratio = latin_p / full_p[..., kept]
    assert np.allclose(ratio, ratio[..., :1], rtol=1e-4)  # one normalisation per step, nothing else moved
    assert latin.stat().st_size < full.stat().st_size


def test_a_recipe_with_an_alphabet_is_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    full = tmp_path / "rec.onnx"
    build_recognizer(full)
    first, second = tmp_path / "one.onnx", tmp_path / "two.onnx"
    for out in (first, second):
        recipes.build("int8-weights", full, out, tmp_path / "unused.json", alphabet="latin")
    assert first.read_bytes() == second.read_bytes()
    assert read(first, np.zeros((1, 3, FEATURES), np.float32))[0][1:-1] == ["a", "b", "C", "é"]


def test_a_model_that_is_not_a_ctc_recognizer_is_refused_with_the_reason(tmp_path: Path) -> None:
    full = tmp_path / "rec.onnx"
    build_recognizer(full)
    model = onnx.load(str(full))
    with pytest.raises(ValueError, match="unknown alphabet 'klingon'"):
        trimmed(model, "klingon")
    del model.metadata_props[:]
    with pytest.raises(ValueError, match="no 'character' metadata"):
        trimmed(model, "latin")
