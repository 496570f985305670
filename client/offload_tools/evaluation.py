"""Accuracy, defined once for the whole project.

Detection F1 at IoU ≥ 0.5 (greedy one-to-one matching by IoU), and word
accuracy: the share of ground-truth words whose matched detection was read
exactly right. An object with nothing to read (a face: its truth text is "")
is right when it is found, so for a detector this share is its recall.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from offload_core.engine.geometry import quad_iou
from offload_core.types import Box, TextItem
from offload_tools.sample import WordTruth

IOU_THRESHOLD = 0.5


class Score(BaseModel):
    """Counts that add up over frames; the rates derive from them."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    words_correct: int = 0
    words_total: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(**{k: getattr(self, k) + getattr(other, k) for k in Score.model_fields})

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.words_total if self.words_total else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def word_accuracy(self) -> float:
        return self.words_correct / self.words_total if self.words_total else 1.0


def match(truth: list[WordTruth], boxes: list[Box]) -> list[tuple[int, int]]:
    """Truth and box index pairs, one to one, at IoU >= 0.5 (greedy, best first)."""
    pairs = []
    for ti, t in enumerate(truth):
        for bi, b in enumerate(boxes):
            iou = quad_iou(t.quad, b.points)
            if iou >= IOU_THRESHOLD:
                pairs.append((iou, ti, bi))
    pairs.sort(reverse=True)
    used_t: set[int] = set()
    used_b: set[int] = set()
    matched = []
    for _, ti, bi in pairs:
        if ti not in used_t and bi not in used_b:
            used_t.add(ti)
            used_b.add(bi)
            matched.append((ti, bi))
    return matched


def score_frame(truth: list[WordTruth], boxes: list[Box], texts: list[TextItem]) -> Score:
    """Score one frame's detections (boxes) and readings (texts) against its ground truth."""
    matched = match(truth, boxes)
    read = match(truth, [t.box for t in texts])
    correct = sum(1 for ti, bi in read if texts[bi].text == truth[ti].text)
    correct += sum(1 for ti, _ in matched if truth[ti].text == "")  # found is right when there is nothing to read
    return Score(
        true_positives=len(matched),
        false_positives=len(boxes) - len(matched),
        false_negatives=len(truth) - len(matched),
        words_correct=correct,
        words_total=len(truth),
    )


def total(scores: Iterable[Score]) -> Score:
    result = Score()
    for s in scores:
        result = result + s
    return result
