"""Face detection with YuNet: boxes and scores, decoded from its three strides, then NMS.

YuNet (OpenCV Zoo) predicts, for every cell of a stride-8, -16 and -32 grid, a class and an
objectness score, a box (centre offset and log size, in strides) and five landmarks. The graph
is made size-agnostic at build time (`make models`), so a frame runs at its own size, padded on
the right and bottom to a multiple of 32: a 640x480 frame costs half of a 640x640 one.
"""

from __future__ import annotations

import time

import numpy as np

from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import OnnxModel, Task, elapsed_ms
from offload_core.types import Box, Prediction, StageTimes

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


class FaceDetection(Task):
    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant)
        self.model = model
        self.score_threshold = float(spec.postprocess.get("score_threshold", 0.5))
        self.nms_threshold = float(spec.postprocess.get("nms_threshold", 0.3))
        self.outputs = [o.name for o in model.session.get_outputs()]

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """BGR uint8 → 1x3xHxW float32 (0-255, as YuNet was trained), padded to multiples of 32."""
        h, w = image.shape[:2]
        padded = (-(-h // 32) * 32, -(-w // 32) * 32)
        tensor = np.zeros((1, 3, *padded), np.float32) if padded != (h, w) else np.empty((1, 3, h, w), np.float32)
        for c in range(3):  # a plane at a time: 2x faster than converting the transposed image whole
            tensor[0, c, :h, :w] = image[:, :, c]
        return tensor

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

    def run(self, image: np.ndarray) -> tuple[Prediction, StageTimes]:
        return self._detect(image, self.score_threshold)

    def find(self, image: np.ndarray, min_score: float) -> list[Box]:
        """The faces in `image` down to `min_score`, whatever the model's own threshold (privacy `redact`
        paints below it)."""
        return self._detect(image, min_score)[0].boxes

    def _detect(self, image: np.ndarray, min_score: float) -> tuple[Prediction, StageTimes]:
        start = time.perf_counter()
        tensor = self.preprocess(image)
        preprocess_ms = elapsed_ms(start)
        start = time.perf_counter()
        values = self.model.session.run(self.outputs, {self.model.input_name: tensor})
        inference_ms = elapsed_ms(start)
        start = time.perf_counter()
        outputs = dict(zip(self.outputs, values, strict=True))
        boxes = self.decode(outputs, tensor.shape[2], tensor.shape[3], min_score)
        return Prediction(boxes=boxes), StageTimes(
            preprocess_ms=preprocess_ms, inference_ms=inference_ms, postprocess_ms=elapsed_ms(start)
        )
