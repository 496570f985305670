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

Two recipes make the file smaller to download rather than faster to run (the model runs in float):
- "palette16"/"palette64" (Core ML's palettization): each large weight tensor is replaced by 16 or 64
  values (1-D k-means) and one index per weight; a Cast and a Gather rebuild the tensor, and
  onnxruntime folds them into a float weight when it builds the session. An index takes a byte on disk,
  but only 4 or 6 bits of entropy: the compressed download is what shrinks. The layers named in
  `keep_float` are stored as "int8-weights" instead (the toolchain keeps the sensitive ones out).
- "int8-weights-prune30/50/70": the smallest 30/50/70 % of each output channel's weights (by
  magnitude) set to zero, then "int8-weights" on top. No retraining (no training data ships): this measures
  what pruning alone costs; zeros compress, so it too pays only on the wire.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter
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
from offload_server.quantize.alphabet import trimmed

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
PALETTES = {"palette16": 16, "palette64": 64}
PRUNED = {f"{WEIGHTS_ONLY_RECIPE}-prune{p}": p / 100 for p in (30, 50, 70)}
RECIPES = (
    "int8-qdq-pc",
    "int8-qdq-pt",
    "int8-qdq-pc-linear",
    "int8-qdq-pc-conv",
    "int8-dynamic",
    WEIGHTS_ONLY_RECIPE,
    "fp16",
    *PALETTES,
    *PRUNED,
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


def trimmed_source(src: Path, alphabet: str, dst: Path) -> Path:
    """The fp32 file `src` with its recognizer head trimmed to `alphabet`, written to `dst`: what every
    recipe with that alphabet starts from (the same bytes each time, so rebuilt files keep their sha256)."""
    with tempfile.TemporaryDirectory(prefix="offload-trim-") as tmp:
        onnx.save(trimmed(onnx.load(str(prepared_float(src, Path(tmp)))), alphabet), str(dst))
    return dst


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
    alphabet: str | None = None,
) -> None:
    """Write `dst` from the fp32 file `src` by `recipe` (a recognizer first trimmed to `alphabet`).

    Static recipes read activation ranges from `calibration_cache`, computing and saving
    them from `calibration` tensors first when the cache does not exist yet.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {RECIPES}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if alphabet is not None:
        with tempfile.TemporaryDirectory(prefix="offload-alphabet-") as tmp:
            source = trimmed_source(src, alphabet, Path(tmp) / src.name)
            build(recipe, source, dst, calibration_cache, calibration, keep_float)
        return
    if recipe == "fp16":
        # Float inputs and outputs are kept, so pre- and post-processing do not change.
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        onnx.save(model, str(dst))
        return
    with tempfile.TemporaryDirectory(prefix="offload-quant-") as tmp:
        prepared = prepared_float(src, Path(tmp))
        keep = set(keep_float or [])
        if recipe == WEIGHTS_ONLY_RECIPE:
            onnx.save(int8_weights(onnx.load(str(prepared)), keep), str(dst))
            return
        if recipe in PRUNED:
            onnx.save(int8_weights(pruned(onnx.load(str(prepared)), PRUNED[recipe], keep), keep), str(dst))
            return
        if recipe in PALETTES:  # the layers kept out of the palette are stored as int8 instead
            onnx.save(int8_weights(palettized(onnx.load(str(prepared)), PALETTES[recipe], keep), set()), str(dst))
            return
        quantize_prepared(recipe, prepared, dst, calibration_cache, calibration, keep_float)


def int8_weights(model: onnx.ModelProto, keep_float: set[str]) -> onnx.ModelProto:
    """Store each large Conv/ConvTranspose/MatMul weight as int8 with one scale per output channel,
    behind a DequantizeLinear node; activations and every other op stay float."""

    def as_int8(w: np.ndarray, name: str, axis: int) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.maximum(np.abs(w).max(axis=others), 1e-12) / 127.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        stored = [
            numpy_helper.from_array(q, f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero"),
        ]
        inputs = [f"{name}_int8", f"{name}_scale", f"{name}_zero"]
        return stored, [helper.make_node("DequantizeLinear", inputs, [name], name=f"{name}_dq", axis=axis)]

    return _stored_smaller(model, keep_float, as_int8)


def pruned(model: onnx.ModelProto, sparsity: float, keep_float: set[str]) -> onnx.ModelProto:
    """Set the smallest `sparsity` share of each output channel's weights (by magnitude) to zero.

    Per channel, not per tensor: these graphs have batch norms folded into their convolutions, so
    channels differ in scale by orders of magnitude, and a cut per tensor zeroed whole channels (30 %
    per tensor left the recognizer reading nothing)."""

    def zeroed(w: np.ndarray, name: str, axis: int) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
        magnitude = np.moveaxis(np.abs(w), axis, 0).reshape(w.shape[axis], -1)
        cut = np.quantile(magnitude, sparsity, axis=1)
        keep = np.moveaxis((magnitude > cut[:, None]).reshape(np.moveaxis(w, axis, 0).shape), 0, axis)
        return [numpy_helper.from_array(np.where(keep, w, 0.0).astype(np.float32), name)], []

    return _stored_smaller(model, keep_float, zeroed)


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(centroids, index of each value): Lloyd's k-means in one dimension, started at the quantiles
    (deterministic: the same tensor always gives the same bytes)."""
    flat = values.ravel().astype(np.float64)
    centroids = np.quantile(flat, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2  # sorted centroids: the nearest is found by bisection
        index = np.searchsorted(edges, flat)
        sums = np.bincount(index, weights=flat, minlength=k)
        counts = np.bincount(index, minlength=k)
        centroids = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
    index = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, flat)
    return centroids.astype(np.float32), index.reshape(values.shape).astype(np.uint8)


def palettized(model: onnx.ModelProto, k: int, keep_float: set[str]) -> onnx.ModelProto:
    """Store each large weight as `k` values shared by the whole tensor, a uint8 index per weight and
    one scale per output channel (the channel's largest magnitude); Cast, Gather and Mul rebuild it.

    The palette is learnt on weights divided by their channel's scale: with batch norms folded in,
    one palette of raw values gave the small channels a single value, and the recognizer read nothing."""

    def as_palette(w: np.ndarray, name: str, axis: int) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
        shape = [1] * w.ndim
        shape[axis] = -1
        others = tuple(i for i in range(w.ndim) if i != axis)
        scale = np.maximum(np.abs(w).max(axis=others), 1e-12).astype(np.float32).reshape(shape)
        table, index = kmeans_1d(w / scale, k)
        stored = [
            numpy_helper.from_array(table, f"{name}_palette"),
            numpy_helper.from_array(index, f"{name}_index"),
            numpy_helper.from_array(scale, f"{name}_scale"),
        ]
        wide, unit = f"{name}_index64", f"{name}_unit"  # Gather takes int32/int64 indices only
        return stored, [
            helper.make_node("Cast", [f"{name}_index"], [wide], name=f"{name}_cast", to=TensorProto.INT64),
            helper.make_node("Gather", [f"{name}_palette", wide], [unit], name=f"{name}_gather", axis=0),
            helper.make_node("Mul", [unit, f"{name}_scale"], [name], name=f"{name}_rescale"),
        ]

    return _stored_smaller(model, keep_float, as_palette)


Storing = Callable[[np.ndarray, str, int], tuple[list[onnx.TensorProto], list[onnx.NodeProto]]]


def _stored_smaller(model: onnx.ModelProto, keep_float: set[str], store: Storing) -> onnx.ModelProto:
    """Replace each large Conv/ConvTranspose/MatMul weight (once per weight; not the nodes in
    `keep_float`) by what `store(weight, name, output axis)` returns: initializers, and the nodes that
    rebuild the weight under its name, placed before the first node that reads it."""
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
                tensors, rebuild = store(w, weight, axis)
                graph.initializer.remove(initializers[weight])
                graph.initializer.extend(tensors)
                nodes += rebuild
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
