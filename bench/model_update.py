"""A model update to measure: version 2 of a weights-only int8 file, with one layer retuned.

A retune (a fine-tune of one layer, a patched channel) rewrites that layer's weights and nothing
else. Here the layer's int8 codes move by -2..+2 (seeded), which changes ~80 % of its bytes; every
other byte of the file stays as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

INT8_SUFFIX = "_int8"  # how `int8-weights` names a stored weight (offload_server.quantize.recipes)


def int8_layers(path: Path) -> list[tuple[str, int]]:
    """(stored weight, bytes) of each int8 weight in the file, largest first."""
    model = onnx.load(str(path))
    layers = [(t.name, int(np.prod(t.dims))) for t in model.graph.initializer if t.name.endswith(INT8_SUFFIX)]
    return sorted(layers, key=lambda layer: -layer[1])


def retuned(path: Path, layer: str, seed: int = 0) -> bytes:
    """The file at `path` with `layer`'s int8 codes retuned; every other byte unchanged."""
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if t.name == layer)
    codes = numpy_helper.to_array(weight).astype(np.int16)
    codes += np.random.default_rng(seed).integers(-2, 3, codes.shape).astype(np.int16)
    weight.CopyFrom(numpy_helper.from_array(np.clip(codes, -127, 127).astype(np.int8), layer))
    return bytes(model.SerializeToString())
