"""Trim a CTC recognizer's head to the characters an app reads: a smaller file that reads the same words.

PP-OCRv4's recognizer is the multilingual Chinese model: its last layer scores 6,625 characters at every
step, and that one layer holds 30 % of the model's weights. An app that reads Latin script never needs the
6,400 characters it cannot see. Cutting their columns out of the head (and their entries out of the
`character` metadata the decoder reads, so file and alphabet stay one) removes those weights without
retraining: for each remaining character the logits are the same numbers, and the softmax over fewer
classes keeps their order. The server's model keeps every character; see docs/models.md.

Example:
    >>> sorted(set("Café 5€") - set(ALPHABETS["latin"]))
    []
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

# Printable ASCII, the Latin-1 letters and signs, the Latin Extended-A letters (Central Europe), and the
# punctuation and currency signs printed on signs and menus.
ALPHABETS: dict[str, str] = {
    "latin": "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0xA1, 0x180))) + "€‘’‚“”„–—…•′″№™",
}
METADATA_KEY = "character"


def trimmed(model: onnx.ModelProto, alphabet: str) -> onnx.ModelProto:
    """`model` whose CTC head (its last MatMul and bias) scores only the blank, the
    characters of its dictionary that are in `alphabet`, and the space (PP-OCR's last class)."""
    if alphabet not in ALPHABETS:
        raise ValueError(f"unknown alphabet {alphabet!r}; known: {sorted(ALPHABETS)}")
    meta = {p.key: p for p in model.metadata_props}
    if METADATA_KEY not in meta:
        raise ValueError("the model has no 'character' metadata: not a PP-OCR recognizer")
    dictionary = meta[METADATA_KEY].value.splitlines()
    wanted = set(ALPHABETS[alphabet])
    kept = [i for i, c in enumerate(dictionary) if c in wanted]
    classes = np.array([0, *(i + 1 for i in kept), len(dictionary) + 1])  # blank, the kept, the space
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    size = len(dictionary) + 2
    # The head: the MatMul weight and the Add bias with one column per class (opset upgrades may wrap
    # the softmax after them in a Flatten and a Reshape, so the nodes are found by their weights).
    head = [
        (name, axis)
        for node in graph.node
        for name, axis in ((node.input[-1], 1 if node.op_type == "MatMul" else 0),)
        if node.op_type in ("MatMul", "Add") and name in initializers
        and initializers[name].dims and initializers[name].dims[-1] == size
    ]  # fmt: skip
    if sorted(axis for _, axis in head) != [0, 1]:
        raise ValueError(f"found no single MatMul + Add head scoring the dictionary's {size} classes")
    for name, axis in head:
        values = numpy_helper.to_array(initializers[name])
        initializers[name].CopyFrom(numpy_helper.from_array(np.take(values, classes, axis=axis), name))
    meta[METADATA_KEY].value = "\n".join(dictionary[i] for i in kept)
    # Shapes recorded for the old class count would contradict the new one: let onnxruntime infer them.
    dims = graph.output[0].type.tensor_type.shape.dim
    if dims and dims[-1].HasField("dim_value"):
        dims[-1].dim_value = len(classes)
    del graph.value_info[:]
    return model
