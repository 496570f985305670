"""bench-continuous's causal bound: a word cannot be read before the fastest inference on a frame that holds it."""

from __future__ import annotations

import pytest

from bench.continuous import Shown, causal_bound, in_view_for, summary
from offload_core.types import Box, TextItem
from offload_tools.evaluation import score_frame
from offload_tools.sample import FrameTruth, GroundTruth, WordTruth

pytestmark = pytest.mark.unit

STOP = [(10.0, 10.0), (60.0, 10.0), (60.0, 30.0), (10.0, 30.0)]
EXIT = [(100.0, 50.0), (150.0, 50.0), (150.0, 70.0), (100.0, 70.0)]


def video(words_per_frame: list[list[tuple[str, list[tuple[float, float]]]]]) -> GroundTruth:
    frames = [
        FrameTruth(index=i, words=[WordTruth(text=t, quad=q) for t, q in ws]) for i, ws in enumerate(words_per_frame)
    ]
    return GroundTruth(seed=0, style="pan", fps=15.0, width=160, height=80, frames=frames)


def perfect(truth: GroundTruth) -> list[Shown]:
    """Every word of every frame found and read, where it is."""
    out = []
    for f in truth.frames:
        boxes = [Box(points=w.quad, label="text") for w in f.words]
        texts = [TextItem(box=b, text=w.text) for b, w in zip(boxes, f.words, strict=True)]
        out.append(Shown(None, 0.0, score_frame(f.words, boxes, texts), texts, boxes=boxes))
    return out


def test_a_word_counts_its_frames_in_view_and_starts_again_after_a_break() -> None:
    both = [("STOP", STOP), ("EXIT", EXIT)]
    truth = video([[("STOP", STOP)], both, [("EXIT", EXIT)], both])
    assert in_view_for(truth) == [[0], [1, 0], [1], [0, 2]]


def test_words_younger_than_the_delay_are_neither_found_nor_read_and_older_ones_keep_the_ceilings_answer() -> None:
    # STOP in view from frame 0 to 5, EXIT enters at frame 3: 6 + 3 word-frames.
    truth = video([[("STOP", STOP)]] * 3 + [[("STOP", STOP), ("EXIT", EXIT)]] * 3)
    ceiling = perfect(truth)
    assert summary(causal_bound(truth, ceiling, 0), truth)["word_accuracy"] == 1.0
    bound = causal_bound(truth, ceiling, 2)
    # STOP is unread on frames 0-1, EXIT on frames 3-4: 5 of 9 word-frames read, no box where nothing was.
    assert [len(s.texts) for s in bound] == [0, 0, 1, 1, 1, 2]
    result = summary(bound, truth)
    assert result["word_accuracy"] == pytest.approx(5 / 9, abs=1e-4)
    assert sum(s.score.false_positives for s in bound) == 0
    assert result["read_delay_frames_median"] == 2
