"""Text detection with DBNet (PP-OCR): probability map → quadrilaterals.

The post-processing follows PaddleOCR's DBPostProcess (Apache-2.0), as packaged
by RapidOCR: threshold, dilate, contours, min-area boxes, score, unclip.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from offload_core.engine.geometry import order_clockwise
from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import BatchableTask, OnnxModel, Prepared, elapsed_ms, normalize, timed_prepare
from offload_core.regions import REGIONS
from offload_core.types import Box, Prediction, StageTimes


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    rect = cv2.minAreaRect(contour)
    return order_clockwise(cv2.boxPoints(rect)), float(min(rect[1]))


def _box_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the box: the "fast" score of DBNet."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(box[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(box[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(box[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(box[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = box - np.array([xmin, ymin], dtype=np.float32)
    cv2.fillPoly(mask, [shifted.reshape(-1, 2).astype(np.int32)], 1)
    return float(cv2.mean(prob[ymin : ymax + 1, xmin : xmax + 1], mask)[0])


def _unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """Grow the shrunk text kernel back to the text's extent (DBNet trains on shrunk regions)."""
    poly = Polygon(box)
    if poly.length == 0:
        return None
    distance = poly.area * ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box.astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(distance)
    if len(expanded) != 1:
        return None
    return np.array(expanded[0], dtype=np.float32).reshape(-1, 1, 2)


def detection_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """The network needs sides that are multiples of 32; scale so the long side fits."""
    ratio = long_side / max(height, width)
    return max(32, round(height * ratio / 32) * 32), max(32, round(width * ratio / 32) * 32)


def detection_input(image: np.ndarray, long_side: int, spec: ModelSpec) -> np.ndarray:
    """HxWx3 BGR frame → the detector's 1x3xhxw tensor (also what a naive client would send as JSON)."""
    h, w = detection_size(image.shape[0], image.shape[1], long_side)
    return normalize(cv2.resize(image, (w, h)), spec)


class TextDetection(BatchableTask):
    accepts = (REGIONS,)  # boxes: a frame rebuilt from crops finds the same

    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant)
        self.model = model
        self.long_side = variant.input_size or 960
        p = self.settings
        self.thresh = float(p.get("thresh", 0.3))
        self.box_thresh = float(p.get("box_thresh", 0.5))
        self.unclip_ratio = float(p.get("unclip_ratio", 1.6))
        self.max_candidates = int(p.get("max_candidates", 1000))
        self.use_dilation = bool(p.get("use_dilation", True))
        self.min_size = 3

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return detection_input(image, self.long_side, self.spec)

    def postprocess(self, prob_map: np.ndarray, height: int, width: int) -> list[Box]:
        prob: np.ndarray[Any, Any] = prob_map.reshape(prob_map.shape[-2:])
        mask = (prob > self.thresh).astype(np.uint8)
        if self.use_dilation:
            mask = np.asarray(cv2.dilate(mask, np.ones((2, 2), dtype=np.uint8)), dtype=np.uint8)
        contours = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[0]
        map_h, map_w = int(prob.shape[0]), int(prob.shape[1])
        boxes: list[Box] = []
        for contour in contours[: self.max_candidates]:
            points, short_side = _mini_box(contour)
            if short_side < self.min_size:
                continue
            score = _box_score(prob, points)
            if score < self.box_thresh:
                continue
            grown = _unclip(points, self.unclip_ratio)
            if grown is None:
                continue
            box, short_side = _mini_box(grown)
            if short_side < self.min_size + 2:
                continue
            box[:, 0] = np.clip(np.round(box[:, 0] / map_w * width), 0, width - 1)
            box[:, 1] = np.clip(np.round(box[:, 1] / map_h * height), 0, height - 1)
            if np.linalg.norm(box[0] - box[1]) <= 3 or np.linalg.norm(box[0] - box[3]) <= 3:
                continue
            boxes.append(Box(points=[(float(x), float(y)) for x, y in box], score=score, label="text"))
        return boxes

    def prepare(self, image: np.ndarray) -> Prepared:
        return timed_prepare(image, self.preprocess)

    def prepare_part(self, image: np.ndarray, frame_size: tuple[int, int]) -> Prepared:
        """Scaled as the whole frame would be (`long_side` is the frame's): the same text found, at the cost
        of the part's area."""
        long_side = max(32, round(self.long_side * max(image.shape[:2]) / max(frame_size)))
        return timed_prepare(image, lambda part: detection_input(part, long_side, self.spec))

    def complete(self, output: np.ndarray, prepared: Prepared, inference_ms: float) -> tuple[Prediction, StageTimes]:
        start = time.perf_counter()
        boxes = self.postprocess(output, prepared.image.shape[0], prepared.image.shape[1])
        return Prediction(boxes=boxes), StageTimes(
            preprocess_ms=prepared.preprocess_ms, inference_ms=inference_ms, postprocess_ms=elapsed_ms(start)
        )
