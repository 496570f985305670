"""Face detection with YuNet: boxes and scores, decoded from its three strides, then NMS.

YuNet (OpenCV Zoo) predicts, for every cell of a stride-8, -16 and -32 grid, a class and an
objectness score, a box (centre offset and log size, in strides) and five landmarks. The graph
is made size-agnostic at build time (`make models`), so a frame runs at its own size, padded on
the right and bottom to a multiple of 32: a 640x480 frame costs half of a 640x640 one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from offload_core.engine.geometry import rect_iou
from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import OnnxModel
from offload_core.engine.tasks.onnx_task import OnnxTask
from offload_core.regions import REGIONS
from offload_core.types import Box, Prediction

STRIDES = (8, 16, 32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = overlap / (areas[best] + areas[rest] - overlap + 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


class FaceDetection(OnnxTask):
    """YuNet on the public task API (`OnnxTask`); `find` also serves privacy `redact` at its own threshold."""

    accepts = (REGIONS,)  # boxes: a frame rebuilt from crops finds the same

    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant, model)
        self.score_threshold = float(self.settings.get("score_threshold", 0.5))
        self.nms_threshold = float(self.settings.get("nms_threshold", 0.3))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """BGR uint8 → 1x3xHxW float32 (0-255, as YuNet was trained), padded to multiples of 32."""
        h, w = image.shape[:2]
        padded = padded_size(image)
        tensor = np.zeros((1, 3, *padded), np.float32) if padded != (h, w) else np.empty((1, 3, h, w), np.float32)
        for c in range(3):  # a plane at a time: 2x faster than converting the transposed image whole
            tensor[0, c, :h, :w] = image[:, :, c]
        return tensor

    def postprocess(self, outputs: dict[str, np.ndarray], image: np.ndarray) -> Prediction:
        return Prediction(boxes=self.decode(outputs, *padded_size(image), self.score_threshold))

    def find(self, image: np.ndarray, min_score: float) -> list[Box]:
        """The faces in `image` down to `min_score`, whatever the model's own threshold (privacy `redact`
        paints below it)."""
        outputs, _ = self.infer(self.prepare(image).tensor)
        return self.decode(outputs, *padded_size(image), min_score)

    def accuracy(self, predictions: list[Prediction], truths: list[Any]) -> float:
        """Detection F1 over all frames at IoU ≥ `MATCH_IOU`; a frame's truth is its faces' (x1, y1, x2, y2)."""
        found = wanted = right = 0
        for prediction, rects in zip(predictions, truths, strict=True):
            boxes = [(*b.points[0], *b.points[2]) for b in prediction.boxes]
            found, wanted = found + len(boxes), wanted + len(rects)
            right += matches(boxes, [tuple(float(v) for v in r) for r in rects])
        return 2 * right / max(1, found + wanted)

    def decode(self, outputs: dict[str, np.ndarray], height: int, width: int, min_score: float) -> list[Box]:
        boxes, scores = [], []
        for stride in STRIDES:
            cols = width // stride
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            hit = np.flatnonzero(score >= min_score)
            if hit.size == 0:
                continue
            bbox = outputs[f"bbox_{stride}"][0, hit]
            cx = (hit % cols + bbox[:, 0]) * stride
            cy = (hit // cols + bbox[:, 1]) * stride
            bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
            scores.append(score[hit])
        if not boxes:
            return []
        all_boxes, all_scores = np.concatenate(boxes), np.concatenate(scores)
        return [
            Box(points=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)], score=float(all_scores[i]), label="face")
            for i in nms(all_boxes, all_scores, self.nms_threshold)
            for x1, y1, x2, y2 in [all_boxes[i].tolist()]
        ]


# A found face matches a true one at this overlap, as words do in the whole project's evaluation.
MATCH_IOU = 0.5


def matches(found: Sequence[tuple[float, ...]], truth: Sequence[tuple[float, ...]]) -> int:
    """How many true boxes a found box matches (each at most once, best overlap first)."""
    pairs = sorted(((rect_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_found: set[int] = set()
    used_truth: set[int] = set()
    for overlap, i, j in pairs:
        if overlap >= MATCH_IOU and i not in used_found and j not in used_truth:
            used_found.add(i)
            used_truth.add(j)
    return len(used_truth)


def padded_size(image: np.ndarray) -> tuple[int, int]:
    """The frame's height and width padded up to multiples of 32, as `preprocess` pads them."""
    return -(-image.shape[0] // 32) * 32, -(-image.shape[1] // 32) * 32
