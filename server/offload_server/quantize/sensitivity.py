"""Per-layer sensitivity: which weighted layers, quantized alone, move the model's output the most.

Each Conv/ConvTranspose/MatMul is quantized on its own (everything else float) and the
output is compared with the fp32 output on calibration inputs (never the held-out
evaluation frames). The most sensitive layers are the ones worth keeping in float when
full int8 loses accuracy; the toolchain then measures whether keeping them helps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from offload_server.quantize.recipes import input_name, prepared_float, quantize_prepared

WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = input_name(path)
    return [np.asarray(session.run(None, {name: x})[0]) for x in inputs]


def rank_layers(src: Path, recipe: str, calibration_cache: Path, inputs: list[np.ndarray]) -> list[tuple[str, float]]:
    """(node name, mean absolute output error when only that node is int8), most sensitive first."""
    with tempfile.TemporaryDirectory(prefix="offload-sens-") as tmp:
        work = Path(tmp)
        prepared = prepared_float(src, work)
        reference = _outputs(prepared, inputs)
        nodes = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in WEIGHTED and n.name]
        errors = []
        for name in nodes:
            one = work / "one.onnx"
            quantize_prepared(recipe, prepared, one, calibration_cache, only=[name])
            out = _outputs(one, inputs)
            errors.append((name, float(np.mean([np.abs(a - b).mean() for a, b in zip(out, reference, strict=True)]))))
    return sorted(errors, key=lambda e: -e[1])
