"""Text spotting: a pipeline of detector → perspective crops → (orientation) → recognizer."""

from __future__ import annotations

import time

import numpy as np

from offload_core.engine.geometry import crop_quad, reading_order
from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import BatchableTask, Prepared, elapsed_ms
from offload_core.engine.tasks.classification import Classification
from offload_core.engine.tasks.text_detection import TextDetection
from offload_core.engine.tasks.text_recognition import TextRecognition
from offload_core.regions import READ_REGIONS, REGIONS
from offload_core.types import Box, Prediction, StageTimes, TextItem


class TextSpotter(BatchableTask):
    """Batchable through its detector: frames share the detector call, each is then read on its own."""

    accepts = (REGIONS, READ_REGIONS)

    def __init__(
        self,
        spec: ModelSpec,
        variant: VariantSpec,
        detector: TextDetection,
        recognizer: TextRecognition,
        orientation: Classification | None = None,
    ) -> None:
        super().__init__(spec, variant)
        if not isinstance(detector, TextDetection) or not isinstance(recognizer, TextRecognition):
            raise ValueError(
                f"pipeline {spec.name!r} needs a text-detection 'detector' and a text-recognition 'recognizer'"
            )
        if orientation is not None and not isinstance(orientation, Classification):
            raise ValueError(f"pipeline {spec.name!r}: 'orientation' must be a classification model")
        self.detector = detector
        self.model = detector.model
        self.recognizer = recognizer
        self.orientation = orientation
        self.min_text_score = float(self.settings.get("min_text_score", 0.5))
        self.read_margin = float(self.settings.get("read_margin", 0.0))

    def _upright(self, crops: list[np.ndarray]) -> tuple[list[np.ndarray], StageTimes]:
        """Turn crops the orientation classifier is sure are upside down."""
        times = StageTimes()
        if self.orientation is None:
            return crops, times
        out = []
        for crop in crops:
            prediction, t = self.orientation.run(crop)
            times = times + t
            top = prediction.classes[0]
            out.append(np.rot90(crop, 2) if top.label == "180" and top.score > 0.9 else crop)
        return out, times

    def prepare(self, image: np.ndarray) -> Prepared:
        return self.detector.prepare(image)

    def prepare_part(self, image: np.ndarray, frame_size: tuple[int, int]) -> Prepared:
        return self.detector.prepare_part(image, frame_size)

    def complete(self, output: np.ndarray, prepared: Prepared, inference_ms: float) -> tuple[Prediction, StageTimes]:
        detected, times = self.detector.complete(output, prepared, inference_ms)
        image = prepared.image
        start = time.perf_counter()
        quads = [np.array(b.points, dtype=np.float32) for b in detected.boxes]
        order = reading_order(quads)
        boxes = [detected.boxes[i] for i in order]
        crops = [crop_quad(image, quads[i], self.read_margin) for i in order]
        times = times + StageTimes(preprocess_ms=elapsed_ms(start))
        crops, t = self._upright(crops)
        times = times + t
        recognized, t = self.recognizer.recognize(crops) if crops else ([], StageTimes())
        times = times + t
        texts = [
            TextItem(box=box, text=text.strip(), score=score)
            for box, (text, score) in zip(boxes, recognized, strict=True)
            if text.strip() and score >= self.min_text_score
        ]
        # A region the recognizer cannot read with confidence is rarely text (a railing, a grille):
        # the spotter reports the boxes it read, as PP-OCR's own pipeline does.
        return Prediction(boxes=[t.box for t in texts], texts=texts), times

    def read(self, lines: list[tuple[Box, np.ndarray]]) -> tuple[Prediction, StageTimes]:
        """Known lines of text (their box in the frame, their pixels): recognition only, no detector.

        What a region request's READ crops get: a word the client already tracks needs reading, not
        finding. A line read below `min_text_score` is left out, as in `complete`.
        """
        recognized, times = self.recognizer.recognize([crop for _, crop in lines]) if lines else ([], StageTimes())
        texts = [
            TextItem(box=box, text=text.strip(), score=score)
            for (box, _), (text, score) in zip(lines, recognized, strict=True)
            if text.strip() and score >= self.min_text_score
        ]
        return Prediction(boxes=[t.box for t in texts], texts=texts), times
