from __future__ import annotations

import pytest

from offload_core.types import Box, TextItem
from offload_tools.evaluation import score_frame, total
from offload_tools.sample import WordTruth

pytestmark = pytest.mark.unit

QUAD = [(0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0)]
FAR = [(300.0, 300.0), (400.0, 300.0), (400.0, 320.0), (300.0, 320.0)]


def item(text: str, quad: list[tuple[float, float]] = QUAD) -> TextItem:
    return TextItem(box=Box(points=quad), text=text)


def test_a_perfect_frame() -> None:
    s = score_frame([WordTruth(text="STOP", quad=QUAD)], [Box(points=QUAD)], [item("STOP")])
    assert (s.f1, s.word_accuracy) == (1.0, 1.0)


def test_misread_word_counts_for_detection_not_for_words() -> None:
    s = score_frame([WordTruth(text="STOP", quad=QUAD)], [Box(points=QUAD)], [item("ST0P")])
    assert s.f1 == 1.0 and s.word_accuracy == 0.0


def test_false_positive_and_miss() -> None:
    truth = [WordTruth(text="STOP", quad=QUAD), WordTruth(text="EXIT", quad=FAR)]
    s = score_frame(truth, [Box(points=QUAD), Box(points=[(p[0] + 500, p[1]) for p in QUAD])], [item("STOP")])
    assert (s.true_positives, s.false_positives, s.false_negatives) == (1, 1, 1)
    assert s.f1 == pytest.approx(0.5) and s.word_accuracy == pytest.approx(0.5)


def test_scores_add_up_over_frames_and_empty_frames_are_perfect() -> None:
    empty = score_frame([], [], [])
    assert empty.f1 == 1.0
    hit = score_frame([WordTruth(text="A", quad=QUAD)], [Box(points=QUAD)], [item("A")])
    miss = score_frame([WordTruth(text="B", quad=QUAD)], [], [])
    s = total([empty, hit, miss])
    assert s.words_total == 2 and s.words_correct == 1 and s.recall == 0.5


def test_an_object_with_nothing_to_read_is_right_when_found() -> None:
    """A face's truth has no text: a detector that finds it scores it right (its "accuracy" is recall)."""
    truth = [WordTruth(text="", quad=QUAD), WordTruth(text="", quad=FAR)]
    s = score_frame(truth, [Box(points=QUAD, label="face")], [])
    assert (s.true_positives, s.false_negatives, s.words_correct, s.words_total) == (1, 1, 1, 2)
    assert s.word_accuracy == pytest.approx(0.5) and s.f1 == pytest.approx(2 / 3)
