"""The oracle and the summary of `make bench-policy`, on hand-made frames."""

from __future__ import annotations

import argparse

import pytest

from bench.policy import Frame, NoiseFloor, frame_size, noise_floor, oracle, summarize, verdict
from offload_client import Where
from offload_client.evaluation import Score

pytestmark = pytest.mark.unit


def frame(ms: float, where: Where, correct: int, total: int = 2, sent: int = 0) -> Frame:
    return Frame(ms, where, Score(words_correct=correct, words_total=total), sent)


LOCAL = [frame(300, Where.LOCAL, 1), frame(300, Where.LOCAL, 1), frame(300, Where.LOCAL, 2)]
REMOTE = [
    frame(200, Where.REMOTE, 2, sent=50),
    frame(350, Where.REMOTE, 2, sent=50),
    frame(900, Where.REMOTE, 2, sent=50),
]


def test_oracle_latency_takes_the_faster_path_per_frame() -> None:
    chosen = oracle(LOCAL, REMOTE, deadline_ms=400, objective="latency")
    assert [f.where for f in chosen] == [Where.REMOTE, Where.LOCAL, Where.LOCAL]


def test_oracle_accuracy_takes_the_more_accurate_path_that_met_the_deadline() -> None:
    chosen = oracle(LOCAL, REMOTE, deadline_ms=400, objective="accuracy")
    # frame 1: remote is slower but in time and reads both words; frame 2: remote missed the deadline.
    assert [f.where for f in chosen] == [Where.REMOTE, Where.REMOTE, Where.LOCAL]
    tight = oracle(LOCAL, REMOTE, deadline_ms=100, objective="accuracy")  # neither in time: the faster
    assert [f.where for f in tight] == [Where.REMOTE, Where.LOCAL, Where.LOCAL]


def test_summary_rates() -> None:
    m = summarize(REMOTE, deadline_ms=400)
    assert m["mean_ms"] == pytest.approx(483.3, abs=0.1)
    assert m["miss_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert m["accuracy"] == 1.0 and m["uplink_bytes"] == 150 and m["remote_share"] == 1.0
    assert m["mispredict_rate"] is None
    assert summarize(LOCAL, deadline_ms=400)["accuracy"] == pytest.approx(4 / 6, abs=1e-3)


def test_noise_floor_is_the_gap_between_two_runs_of_one_policy() -> None:
    floor = noise_floor([100.0, 300.0], [220.0, 220.0], deadline_ms=250)
    assert floor.mean_share == pytest.approx(0.1) and floor.miss_points == pytest.approx(50.0)
    assert noise_floor([250.0], [250.0], deadline_ms=200) == NoiseFloor(0.0, 0.0)


def test_a_target_missed_by_less_than_the_noise_floor_is_within_noise() -> None:
    assert verdict(1.0, 1.15, 0.0) == "met" and verdict(2.0, 3.0, 5.0) == "met"
    assert verdict(4.5, 3.0, 2.1) == "within noise" and verdict(5.2, 3.0, 2.1) == "NOT met"


def test_frame_size_reads_width_x_height_and_says_what_it_expects() -> None:
    assert frame_size("960x540") == (960, 540) and frame_size("1280X720") == (1280, 720)
    with pytest.raises(argparse.ArgumentTypeError, match="like 960x540"):
        frame_size("960")
    with pytest.raises(argparse.ArgumentTypeError, match="too small"):
        frame_size("32x32")
