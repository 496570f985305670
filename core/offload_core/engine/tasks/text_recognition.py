"""Text recognition (PP-OCR CRNN/SVTR): line crops → strings by CTC greedy decoding.

The character dictionary is read from the model's own ONNX metadata
(`character`), so the model file and its alphabet can never disagree.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import OnnxModel, Task, elapsed_ms
from offload_core.types import Box, Prediction, StageTimes, TextItem


def ctc_greedy_decode(probs: np.ndarray, alphabet: list[str]) -> list[tuple[str, float]]:
    """Decode (batch, steps, classes) CTC probabilities; class 0 is the blank.

    Repeated classes collapse to one and blanks are dropped; the score is the
    mean probability of the kept steps.
    """
    best = probs.argmax(axis=2)
    best_p = probs.max(axis=2)
    results = []
    for idx, p in zip(best, best_p, strict=True):
        keep = np.ones(len(idx), dtype=bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != 0
        text = "".join(alphabet[i] if i < len(alphabet) else "" for i in idx[keep])
        score = float(p[keep].mean()) if keep.any() else 0.0
        results.append((text, score))
    return results


def alphabet_from_metadata(characters: str) -> list[str]:
    """PP-OCR's class list: blank, the dictionary's characters, then a space."""
    return ["<blank>", *characters.splitlines(), " "]


def line_batch(crops: list[np.ndarray], height: int, min_width: int) -> np.ndarray:
    """Resize to the model height, keep aspect, pad right to the widest crop of the batch."""
    ratios = [c.shape[1] / max(c.shape[0], 1) for c in crops]
    width = max(min_width, math.ceil(height * max(ratios)))
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for i, (crop, ratio) in enumerate(zip(crops, ratios, strict=True)):
        w = min(width, max(1, math.ceil(height * ratio)))
        x = cv2.resize(crop, (w, height)).astype(np.float32)
        batch[i, :, :, :w] = (x.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return batch


class TextRecognition(Task):
    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant)
        self.model = model
        meta = model.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ValueError(f"recognition model {spec.name!r} has no 'character' metadata to decode with")
        self.alphabet = alphabet_from_metadata(meta["character"])
        self.height = variant.input_size or 48
        self.min_width = int(self.settings.get("min_width", 320)) * self.height // 48
        self.batch_size = int(self.settings.get("batch_size", 6))

    def _batch(self, crops: list[np.ndarray]) -> np.ndarray:
        return line_batch(crops, self.height, self.min_width)

    def recognize(self, crops: list[np.ndarray]) -> tuple[list[tuple[str, float]], StageTimes]:
        """Recognize many line crops, batching crops of similar shape together."""
        times = StageTimes()
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
        for start_idx in range(0, len(order), self.batch_size):
            chunk = order[start_idx : start_idx + self.batch_size]
            start = time.perf_counter()
            batch = self._batch([crops[i] for i in chunk])
            pre = elapsed_ms(start)
            probs, infer = self.model(batch)
            start = time.perf_counter()
            for i, decoded in zip(chunk, ctc_greedy_decode(probs, self.alphabet), strict=True):
                results[i] = decoded
            times = times + StageTimes(preprocess_ms=pre, inference_ms=infer, postprocess_ms=elapsed_ms(start))
        return results, times

    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        """Treat the whole image as one line of text."""
        [(text, score)], times = self.recognize([image])
        h, w = image.shape[:2]
        box = Box(points=[(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))], score=score)
        return Prediction(texts=[TextItem(box=box, text=text, score=score)] if text else []), times
