"""Image classification: resize to the model's fixed size, softmax scores, top-k labels.

Written on the public task API (`OnnxTask`), as a user's classifier would be.
"""

from __future__ import annotations

import cv2
import numpy as np

from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.base import OnnxModel, normalize
from offload_core.engine.tasks.onnx_task import OnnxTask
from offload_core.types import ClassScore, Prediction


class Classification(OnnxTask):
    def __init__(self, spec: ModelSpec, variant: VariantSpec, model: OnnxModel) -> None:
        super().__init__(spec, variant, model)
        if not spec.input.size or len(spec.input.size) != 2:
            raise ValueError(f"classification model {spec.name!r} needs input.size [height, width]")
        self.height, self.width = spec.input.size
        self.top_k = int(self.settings.get("top_k", 5))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return normalize(resized, self.spec)

    def postprocess(self, outputs: dict[str, np.ndarray], image: np.ndarray) -> Prediction:
        probs = self.scores(next(iter(outputs.values())))[0]
        k = min(self.top_k, probs.shape[0])
        labels = self.spec.labels
        return Prediction(
            classes=[
                ClassScore(label=labels[i] if i < len(labels) else str(i), score=float(probs[i]))
                for i in np.argsort(-probs)[:k]
            ]
        )

    @staticmethod
    def scores(logits: np.ndarray) -> np.ndarray:
        """Per-row probabilities; models that already end in softmax pass through unchanged."""
        logits = logits.reshape(logits.shape[0], -1).astype(np.float64)
        rows_sum_to_one = np.allclose(logits.sum(axis=1), 1.0, atol=1e-3) and (logits >= 0).all()
        if rows_sum_to_one:
            return logits
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))
