"""Per-layer sensitivity: which weighted layers, quantized alone, move the model's output the most.

Each Conv/ConvTranspose/MatMul is quantized on its own (everything else float) and the
output is compared with the fp32 output on calibration inputs (never the held-out
evaluation frames). The most sensitive layers are the ones worth keeping in float when
full int8 loses accuracy; the toolchain then measures whether keeping them helps. The same search
ranks layers for a palette: the least sensitive are palettized first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from offload_server.quantize.recipes import input_name, palettized, prepared_float, quantize_prepared

WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = input_name(path)
    return [np.asarray(session.run(None, {name: x})[0]) for x in inputs]


def rank_layers(src: Path, recipe: str, calibration_cache: Path, inputs: list[np.ndarray]) -> list[tuple[str, float]]:
    """(node name, mean absolute output error when only that node is int8), most sensitive first."""

    def one_int8(prepared: Path, dst: Path, node: str, _: list[str]) -> None:
        quantize_prepared(recipe, prepared, dst, calibration_cache, only=[node])

    return [(name, error) for name, error, _ in _ranked(src, inputs, one_int8)]


def rank_palette_layers(src: Path, k: int, inputs: list[np.ndarray]) -> list[tuple[str, float, int]]:
    """(node name, output error when only that node's weight is a `k`-value palette, weight elements),
    most sensitive first."""

    def one_palette(prepared: Path, dst: Path, node: str, nodes: list[str]) -> None:
        others = {n for n in nodes if n != node}
        onnx.save(palettized(onnx.load(str(prepared)), k, others), str(dst))

    return _ranked(src, inputs, one_palette)


def _ranked(
    src: Path, inputs: list[np.ndarray], make_one: Callable[[Path, Path, str, list[str]], None]
) -> list[tuple[str, float, int]]:
    """Each weighted node changed alone by `make_one(prepared, dst, node, all nodes)`, scored by how far
    its output moves from fp32's on `inputs`; most sensitive first."""
    with tempfile.TemporaryDirectory(prefix="offload-sens-") as tmp:
        work = Path(tmp)
        prepared = prepared_float(src, work)
        reference = _outputs(prepared, inputs)
        graph = onnx.load(str(prepared)).graph
        sizes = {i.name: int(np.prod(i.dims)) for i in graph.initializer}
        weighted = {n.name: sizes.get(n.input[1], 0) for n in graph.node if n.op_type in WEIGHTED and n.name}
        errors = []
        for name in weighted:
            one = work / "one.onnx"
            make_one(prepared, one, name, list(weighted))
            out = _outputs(one, inputs)
            error = float(np.mean([np.abs(a - b).mean() for a, b in zip(out, reference, strict=True)]))
            errors.append((name, error, weighted[name]))
    return sorted(errors, key=lambda e: -e[1])
