"""The oracle and the summary of `make bench-policy`, on hand-made frames."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import pytest

from bench.policy import (
    Frame,
    NoiseFloor,
    below_local,
    device_speed,
    energy_oracle,
    energy_targets,
    expected_of,
    frame_size,
    misprediction,
    noise_floor,
    oracle,
    paired_differences,
    predictor_spread,
    recharged,
    references,
    summarize,
    target_lines,
    two_standard_errors,
    verdict,
)
from offload_client import Where
from offload_client.energy import LTE, WIFI
from offload_core.types import FrameResult, Timings
from offload_tools.evaluation import Score

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


def test_a_target_missed_by_less_than_the_noise_floor_is_unresolved_never_met() -> None:
    assert verdict(1.0, 1.15, 0.0) == "met" and verdict(2.0, 3.0, 5.0) == "met"
    assert verdict(5.2, 3.0, 2.1) == "NOT met"
    # Missed by 1.5 with ±2.1 over 2 passes: 2 x (2.1 / 1.5)^2 = 3.9, so 4 passes would tell.
    assert verdict(4.5, 3.0, 2.1, passes=2) == "unresolved: 4 passes needed"
    # The case: +15 points against a +3 target with an 11-point band is a clear miss.
    assert verdict(15.0, 3.0, 11.0, passes=2) == "NOT met"


def test_frame_size_reads_width_x_height_and_says_what_it_expects() -> None:
    assert frame_size("960x540") == (960, 540) and frame_size("1280X720") == (1280, 720)
    with pytest.raises(argparse.ArgumentTypeError, match="like 960x540"):
        frame_size("960")
    with pytest.raises(argparse.ArgumentTypeError, match="too small"):
        frame_size("32x32")


def on_device(ms: float, sent: int = 0) -> Frame:
    return Frame(ms + 5, Where.LOCAL, Score(words_correct=1, words_total=1), sent, device_ms=ms)


def test_device_speed_compares_frames_the_device_answered_alone_with_the_reference_runs() -> None:
    times = (100, 200, 300, 400, 500, 600, 700, 800)
    reference = [[on_device(ms) for ms in times] for _ in range(2)]
    slow = [on_device(ms * 1.2) for ms in times]
    slow[0] = on_device(900, sent=20_000)  # raced: its encoding and call shared the core, so it does not count
    slow[1] = Frame(80, Where.REMOTE, Score(words_correct=1, words_total=1), 20_000)
    slow[2] = on_device(3000)  # one hiccup does not move the median
    slow[3] = replace(on_device(9000), variant="device-accurate")  # another variant: slower by design
    assert device_speed(slow, reference) == pytest.approx(1.2)
    assert device_speed(slow[:6], reference) is None  # too few frames on the device alone to say


def test_the_noise_of_single_frames_is_two_standard_errors_of_the_paired_differences() -> None:
    local = [on_device(ms) for ms in (100, 200, 300, 400)]
    again = [on_device(ms + 20) for ms in (100, 200, 300, 400)]
    one = {"always-local": local, "always-local-again": again, "oracle-accuracy": local + again}
    assert references(one, "always-local") == [local, again]
    assert references(one, "oracle-accuracy") == [local, again]  # one oracle per always-local run
    policy = [on_device(ms) for ms in (130, 190, 330, 400)]
    differences = paired_differences(policy, references(one, "always-local"), lambda f: f.latency_ms)
    assert differences == pytest.approx([20, -20, 20, -10])
    assert two_standard_errors(differences) == pytest.approx(2 * np.std(differences, ddof=1) / 2)
    assert two_standard_errors([5.0]) == 0.0


def test_each_target_is_judged_against_its_own_noise() -> None:
    def metrics(mean_ms: float, miss: float = 0.2, accuracy: float = 1.0, speed: float = 1.0) -> dict[str, object]:
        return {"mean_ms": mean_ms, "miss_rate": miss, "accuracy": accuracy, "device_speed": [speed, None]}

    by = {
        "always-local": metrics(300),
        "always-remote": metrics(500),
        "adaptive-latency": metrics(306, speed=1.1),
        "adaptive-accuracy": metrics(320, miss=0.26),
        "oracle-latency": metrics(290),
        "oracle-accuracy": metrics(290, miss=0.2),
        "oracle-timing": metrics(290, miss=0.2, accuracy=0.98),
    }
    floor = NoiseFloor(0.01, 2.0, latency_band=0.03, miss_band=4.0, passes=2)
    noise, speed, latency, accuracy, timing = target_lines(by, floor)
    assert "differ by 1.0% in mean latency and 2.0 points in miss rate" in noise
    assert "±3.0% in mean latency and ±4.0 points in miss rate over 2 pass(es)" in noise
    assert "adaptive-latency ×1.10 / ?" in speed
    assert "mean 306 ms = 1.06× oracle-latency (target ≤ 1.15: met)" in latency
    # 2 x (3.0 / 2.0)^2 = 4.5 passes; 2 x (4.0 / 3.0)^2 = 3.6.
    assert latency.endswith("+2.0% vs the better static policy (300 ms) (target ≤ 0: unresolved: 5 passes needed)")
    assert accuracy.endswith(
        "miss rate 0.26: +6.0 points from oracle-accuracy's 0.2 (target ≤ +3: unresolved: 4 passes needed)"
    )
    assert (
        "reads 0.98: adaptive-accuracy -2.0 points below it (target ≤ 3: met), oracle-accuracy +2.0 above it" in timing
    )
    tight = NoiseFloor(0.01, 2.0)
    assert target_lines(by, tight)[2].endswith("NOT met)") and target_lines(by, tight)[3].endswith("NOT met)")


def result(where: Where, ms: float, local: float | None, remote: float | None, raced: bool = False) -> FrameResult:
    return FrameResult(
        frame_id=0, where=where, reason="test", latency_ms=ms, timings=Timings(total_ms=ms), model="m",
        variant="v", privacy="allow", policy="adaptive", predicted_local_ms=local, predicted_remote_ms=remote,
        raced=raced,
    )  # fmt: skip


def test_a_misprediction_is_the_chosen_path_predicted_on_the_wrong_side_of_the_deadline() -> None:
    assert misprediction(result(Where.LOCAL, 450, 350, 600), 400) is True
    assert misprediction(result(Where.REMOTE, 300, 450, 350), 400) is False
    assert misprediction(result(Where.LOCAL, 300, None, None), 400) is None  # nothing predicted
    # A race predicts its first answer: the faster of the two paths, whichever answered.
    assert misprediction(result(Where.LOCAL, 380, 450, 350, raced=True), 400) is False
    assert misprediction(result(Where.REMOTE, 420, 450, 350, raced=True), 400) is True
    assert misprediction(result(Where.LOCAL, 300, None, None, raced=True), 400) is None


def test_oracle_chooses_among_every_device_variant_and_the_server() -> None:
    fast = [frame(300, Where.LOCAL, 1), frame(300, Where.LOCAL, 1)]
    accurate = [frame(380, Where.LOCAL, 2), frame(380, Where.LOCAL, 2)]
    remote = [frame(200, Where.REMOTE, 2), frame(900, Where.REMOTE, 2)]
    chosen = oracle(fast, remote, 400, "accuracy", accurate)
    # frame 0: the server reads as much as the accurate variant, sooner; frame 1: only the devices are in
    # time, and the accurate variant reads more.
    assert [f.latency_ms for f in chosen] == [200, 380]
    assert [f.latency_ms for f in oracle(fast, remote, 400, "latency", accurate)] == [200, 300]


def test_the_timing_oracle_knows_each_frames_time_but_only_each_paths_held_out_accuracy() -> None:
    fast = [frame(300, Where.LOCAL, 2), frame(300, Where.LOCAL, 1), frame(300, Where.LOCAL, 1)]
    accurate = [frame(380, Where.LOCAL, 1), frame(380, Where.LOCAL, 2), frame(450, Where.LOCAL, 2)]
    remote = [frame(900, Where.REMOTE, 2), frame(900, Where.REMOTE, 2), frame(900, Where.REMOTE, 2)]
    fast = [replace(f, variant="fast") for f in fast]
    accurate = [replace(f, variant="accurate") for f in accurate]
    # fast, accurate, server: as measured on held-out frames
    expected = expected_of({Where.LOCAL: 0.6, "fast": 0.6, "accurate": 0.7, Where.REMOTE: 0.75})
    chosen = oracle(fast, remote, 400, "timing", accurate, expected=expected)
    # frames 0 and 1: the accurate variant is in time and better on average, whatever the frame itself read;
    # frame 2: it is late, so the fast one.
    assert [f.latency_ms for f in chosen] == [380, 380, 300]
    assert [f.score.words_correct for f in chosen] == [1, 2, 1]
    # The answer key's oracle takes the fast variant on frame 0, where it happened to read more.
    assert [f.score.words_correct for f in oracle(fast, remote, 400, "accuracy", accurate)] == [2, 2, 1]


def device_frame(mj: float, ms: float = 160.0) -> Frame:
    return Frame(ms, Where.LOCAL, Score(words_correct=1, words_total=2), 0, energy_mj=mj)


def sent(ms: float = 200.0) -> Frame:
    return Frame(
        ms, Where.REMOTE, Score(words_correct=2, words_total=2), 24_000, energy_mj=10.0
    )  # the calibration: encoding only


def test_an_oracles_radio_energy_is_charged_on_its_own_schedule() -> None:
    frames = recharged([sent(), device_frame(290), sent()], 0.5, LTE)
    first = LTE.promotion_s * LTE.promotion_mw + LTE.transfer_mj(0.2, 24_000, 0) + LTE.tail_mj(LTE.tail_s)
    assert frames[0].radio_mj == pytest.approx(first)
    # The third frame went out 1 s on: it pays the 0.8 s of tail since the first's answer, not a new one.
    assert frames[2].radio_mj == pytest.approx(LTE.tail_mj(0.8) + LTE.transfer_mj(0.2, 24_000, 0))
    assert frames[2].energy_mj == pytest.approx(frames[2].radio_mj + 10.0) and frames[1].energy_mj == 290


def test_the_energy_oracle_takes_the_cheapest_schedule_in_time_not_the_cheapest_frame() -> None:
    # LTE at 2 frames a second: every frame sent costs at least 530 mJ of tail, the device 290.
    assert {f.where for f in energy_oracle([device_frame(290)] * 8, [sent()] * 8, 500, 0.5, LTE)} == {Where.LOCAL}
    # A device late for the deadline is not a choice, however cheap.
    late = energy_oracle([device_frame(290), device_frame(290, ms=700)], [sent(), sent()], 500, 0.5, LTE)
    assert [f.where for f in late] == [Where.LOCAL, Where.REMOTE]
    # A costly device (1 J): waking the radio (12.9 J) loses on any one frame, but over 40 frames the
    # schedule that sends them all is cheaper (~12.9 J + 39 x 0.6 J).
    chosen = energy_oracle([device_frame(1000)] * 40, [sent()] * 40, 500, 0.5, LTE)
    assert {f.where for f in chosen} == {Where.REMOTE}
    assert sum(f.energy_mj for f in chosen) < 40 * 1000
    assert {f.where for f in energy_oracle([device_frame(1000)] * 5, [sent()] * 5, 500, 0.5, LTE)} == {Where.LOCAL}
    # Wi-Fi's tail is a quarter of a second at 119 mW: sending is cheaper than the device from the first frame.
    assert {f.where for f in energy_oracle([device_frame(290)] * 4, [sent()] * 4, 500, 0.5, WIFI)} == {Where.REMOTE}


def test_energy_targets_and_the_cross_trace_one() -> None:
    def metrics(mj: float, miss: float = 0.0, sends: float = 0.3) -> dict[str, object]:
        return {"mj_per_frame": mj, "miss_rate": miss, "remote_share": sends}

    by = {"adaptive-energy": metrics(300), "oracle-energy": metrics(290), "always-local": metrics(290),
          "always-remote": metrics(1300), "adaptive-latency": metrics(900, miss=0.05)}  # fmt: skip
    floor = NoiseFloor(0.02, 0.0, passes=2)
    judged = energy_targets(by, floor, "lte")
    assert [t["verdict"] for t in judged.values()] == ["met", "met", "met"]
    assert len(energy_targets(by, floor, "3g")) == 2  # the saving against always-remote is an LTE target
    costly = by | {"adaptive-energy": metrics(400)}
    assert (
        energy_targets(costly, floor, "lte")["adaptive-energy / oracle-energy (mJ per frame)"]["verdict"] == "NOT met"
    )
    assert below_local({"a": by}, {"a": floor}).endswith("(target: at least one: NOT met)")
    inside_noise = by | {"adaptive-energy": metrics(285)}  # 1.7 % below: the noise is 2 %
    assert below_local({"a": inside_noise}, {"a": floor}).endswith("(target: at least one: unresolved)")
    # Far below, but it sent nothing: it ran what always-local ran, so the difference is the machine's.
    same_path = by | {"adaptive-energy": metrics(200, sends=0.0)}
    assert below_local({"a": same_path}, {"a": floor}).endswith("(target: at least one: unresolved)")
    # The two always-local runs' own spread in joules widens the band.
    wide = replace(floor, energy_share=0.5)
    beyond = by | {"adaptive-energy": metrics(150)}
    assert below_local({"a": beyond}, {"a": wide}).endswith("(target: at least one: unresolved)")
    assert below_local({"a": by, "b": beyond}, {"a": floor, "b": floor}).startswith(
        "adaptive-energy below always-local beyond the noise on: b"
    )
    assert below_local({"b": beyond}, {"b": floor}).endswith("(target: at least one: met)")
    # Under its oracle is never a win: within the noise it says so, beyond it a measurement is wrong.
    under = energy_targets(by | {"adaptive-energy": metrics(285)}, floor, "3g")
    assert under["adaptive-energy / oracle-energy (mJ per frame)"]["verdict"].startswith("within noise")
    far_under = energy_targets(by | {"adaptive-energy": metrics(200)}, floor, "3g")
    assert far_under["adaptive-energy / oracle-energy (mJ per frame)"]["verdict"].startswith("oracle beaten")


@pytest.mark.parametrize("seed", range(5))
def test_no_policy_beats_an_oracle_that_may_choose_what_the_policy_did(seed: int) -> None:
    """Fed the policies' own frames (any quality, raced, probed), each oracle is a bound on every one of them."""
    rng = np.random.default_rng(seed)

    def run(where: Where, sends: bool) -> list[Frame]:
        return [
            Frame(float(rng.uniform(100, 900)), where, Score(words_correct=int(rng.integers(0, 3)), words_total=2),
                  int(rng.integers(5_000, 40_000)) if sends else 0, energy_mj=float(rng.uniform(50, 900)))
            for _ in range(12)
        ]  # fmt: skip

    local, local_again, remote = run(Where.LOCAL, False), run(Where.LOCAL, False), run(Where.REMOTE, True)
    played = [run(Where.REMOTE, True), run(Where.LOCAL, False), run(Where.LOCAL, False)]
    deadline = 500.0
    for policy in played:
        for base in (local, local_again):
            fastest = oracle(base, remote, deadline, "latency", *played)
            assert np.mean([f.latency_ms for f in fastest]) <= np.mean([f.latency_ms for f in policy])
            best = oracle(base, remote, deadline, "accuracy", *played)

            def in_time_words(frames: list[Frame]) -> int:
                return sum(f.score.words_correct for f in frames if f.latency_ms <= deadline)

            assert in_time_words(best) >= in_time_words(policy)
            cheapest = energy_oracle(base, remote, deadline, 0.5, LTE, *played)
            # The policy's own schedule, charged the same way, where every frame was in time.
            if all(f.latency_ms <= deadline for f in policy):
                assert sum(f.energy_mj for f in cheapest) <= sum(f.energy_mj for f in recharged(policy, 0.5, LTE))


def test_the_time_predictor_is_judged_against_predicting_the_average_frame() -> None:
    times = [100.0, 300.0, 100.0, 300.0]
    exact = [replace(frame(t, Where.LOCAL, 1), predicted_local_ms=t) for t in times]
    blind = [replace(frame(t, Where.LOCAL, 1), predicted_local_ms=200.0) for t in times]
    raced = [replace(f, reason="adaptive-accuracy: racing both paths") for f in exact]
    assert predictor_spread({"adaptive-latency": exact})["device"] == {
        "frames": 4, "residual_ms": 0.0, "average_spread_ms": 100.0, "ratio": 0.0
    }  # fmt: skip
    assert predictor_spread({"adaptive-accuracy": blind})["device"]["ratio"] == 1.0  # no better than the average
    assert predictor_spread({"adaptive-latency": raced}) == {}  # a raced frame's time is neither path's alone
