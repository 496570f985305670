"""Recipes: how a smaller file is made from a model's fp32 ONNX file, deterministically.

Static int8 needs activation ranges; they come from calibration frames once and are
saved as a JSON cache beside `model.yaml` (committed), so `make models` rebuilds the
very same bytes from the recipe without calibrating again, and the sha256 recorded in
`model.yaml` holds.

The pitfalls that make int8 collapse or fail are handled here:
- per-channel QDQ needs opset ≥ 13 (QuantizeLinear's `axis`): older graphs are upgraded;
- `quant_pre_process` runs with symbolic shape inference skipped (it fails on these
  dynamic-shape PP-OCR graphs);
- nodes listed in `keep_float` stay in float (the sensitivity search finds them).

"int8-weights" is the recipe for models that lose words to int8 arithmetic (the recognizer:
4 points on the real-photo sample): only the weights are stored as int8 (per output channel,
symmetric), so the file is ~4x smaller; onnxruntime turns them back into float when it loads
the file (`WEIGHTS_ONLY_RECIPE` in the client's spec), and the model runs in float. It needs no
calibration: the same fp32 file always gives the same bytes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.transformers.float16 import convert_float_to_float16

from offload_core.engine.spec import WEIGHTS_ONLY_RECIPE

MIN_QDQ_OPSET = 13
# recipe → (per-channel, op types to quantize; None: every type onnxruntime can).
# "-linear" quantizes only the layers with weights (convolutions, MatMuls) and "-conv" only the
# convolutions; the rest (hard-swish, squeeze-excite products, normalizations, softmax) stays
# float: element-wise ops are where int8 loses the signal and saves no weight bytes.
STATIC: dict[str, tuple[bool, list[str] | None]] = {
    "int8-qdq-pc": (True, None),
    "int8-qdq-pt": (False, None),
    "int8-qdq-pc-linear": (True, ["Conv", "ConvTranspose", "MatMul", "Gemm"]),
    "int8-qdq-pc-conv": (True, ["Conv", "ConvTranspose"]),
}
RECIPES = (
    "int8-qdq-pc",
    "int8-qdq-pt",
    "int8-qdq-pc-linear",
    "int8-qdq-pc-conv",
    "int8-dynamic",
    WEIGHTS_ONLY_RECIPE,
    "fp16",
)
# Weighted op → the axis of its weight that holds the output channels (one scale per channel).
OUTPUT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}
SMALLEST_WEIGHT = 1024  # elements; smaller weights (biases, 1x1 tails) save nothing worth a node


class Tensors(CalibrationDataReader):  # type: ignore[misc]  # untyped base
    """Feeds calibration tensors to onnxruntime's calibrator, one input at a time."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]) -> None:
        self._items: Iterator[dict[str, np.ndarray]] = iter([{input_name: t} for t in tensors])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def upgraded_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return version_converter.convert_version(model, MIN_QDQ_OPSET) if opset < MIN_QDQ_OPSET else model


def prepared_float(src: Path, work: Path) -> Path:
    """The fp32 graph made ready for quantization: opset ≥ 13, shapes inferred, optimized."""
    upgraded = work / "opset.onnx"
    onnx.save(upgraded_opset(onnx.load(str(src))), str(upgraded))
    out = work / "prepared.onnx"
    quant_pre_process(str(upgraded), str(out), skip_symbolic_shape=True)
    return out


def has_matmul(path: Path) -> bool:
    return any(n.op_type in ("MatMul", "Gemm", "LSTM", "GRU") for n in onnx.load(str(path)).graph.node)


def applicable(src: Path) -> list[str]:
    """Dynamic int8 and "-linear" differ from the rest only where there are MatMul/recurrent parts."""
    matmul = has_matmul(src)
    return [r for r in RECIPES if matmul or r not in ("int8-dynamic", "int8-qdq-pc-linear")]


def input_name(path: Path) -> str:
    return str(onnx.load(str(path)).graph.input[0].name)


def build(
    recipe: str,
    src: Path,
    dst: Path,
    calibration_cache: Path,
    calibration: list[np.ndarray] | None = None,
    keep_float: list[str] | None = None,
) -> None:
    """Write `dst` from the fp32 file `src` by `recipe`.

    Static recipes read activation ranges from `calibration_cache`, computing and saving
    them from `calibration` tensors first when the cache does not exist yet.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {RECIPES}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if recipe == "fp16":
        # Float inputs and outputs are kept, so pre- and post-processing do not change.
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(dst))
        return
    with tempfile.TemporaryDirectory(prefix="offload-quant-") as tmp:
        prepared = prepared_float(src, Path(tmp))
        if recipe == WEIGHTS_ONLY_RECIPE:
            onnx.save(int8_weights(onnx.load(str(prepared)), set(keep_float or [])), str(dst))
            return
        quantize_prepared(recipe, prepared, dst, calibration_cache, calibration, keep_float)


def int8_weights(model: onnx.ModelProto, keep_float: set[str]) -> onnx.ModelProto:
    """Store each large Conv/ConvTranspose/MatMul weight as int8 with one scale per output channel,
    behind a DequantizeLinear node; activations and every other op stay float."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    stored: set[str] = set()
    for node in graph.node:
        weight = node.input[1] if len(node.input) > 1 else ""
        axis = OUTPUT_AXIS.get(node.op_type)
        if axis is not None and weight in initializers and weight not in stored and node.name not in keep_float:
            w = numpy_helper.to_array(initializers[weight]).astype(np.float32)
            if w.size >= SMALLEST_WEIGHT:
                others = tuple(i for i in range(w.ndim) if i != axis)
                scale = (np.maximum(np.abs(w).max(axis=others), 1e-12) / 127.0).astype(np.float32)
                shape = [1] * w.ndim
                shape[axis] = -1
                q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
                graph.initializer.remove(initializers[weight])
                graph.initializer.extend(
                    [
                        numpy_helper.from_array(q, f"{weight}_int8"),
                        numpy_helper.from_array(scale, f"{weight}_scale"),
                        numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{weight}_zero"),
                    ]
                )
                inputs = [f"{weight}_int8", f"{weight}_scale", f"{weight}_zero"]
                nodes.append(helper.make_node("DequantizeLinear", inputs, [weight], name=f"{weight}_dq", axis=axis))
                stored.add(weight)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def quantize_prepared(
    recipe: str,
    prepared: Path,
    dst: Path,
    calibration_cache: Path,
    calibration: list[np.ndarray] | None = None,
    keep_float: list[str] | None = None,
    only: list[str] | None = None,
) -> None:
    """`build`'s int8 half, on an already prepared graph; `only` quantizes just those nodes (sensitivity)."""
    if recipe == "int8-dynamic":
        quantize_dynamic(
            str(prepared),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=keep_float or [],
        )
        return
    if not calibration_cache.is_file() and not calibration:
        raise FileNotFoundError(
            f"{calibration_cache} is missing and no calibration frames were given; "
            "run `offload-server quantize` to calibrate"
        )
    reader = Tensors(input_name(prepared), calibration or [])
    quantize_static(
        str(prepared),
        str(dst),
        reader if calibration else None,
        quant_format=QuantFormat.QDQ,
        per_channel=STATIC[recipe][0],
        op_types_to_quantize=STATIC[recipe][1],
        # U8S8 is onnxruntime's fast pair on x86 CPUs, but without VNNI (AVX2 only, as on this project's
        # machines) its VPMADDUBSW sums pairs of u8 x s8 products into int16 and saturates: a tiny
        # convnet's outputs were off by 0.25. 7-bit weights (onnxruntime's documented remedy) cannot
        # saturate on any CPU: 0.02 there.
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        reduce_range=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_quantize=only,
        nodes_to_exclude=keep_float or [],
        calibration_cache_path=str(calibration_cache),
    )
