"""The energy objective: the cheaper path in joules, within the deadline, and no radio woken for nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from offload_client import Where
from offload_client.energy import LTE, THREE_G, WIFI
from offload_client.policy import Adaptive, Estimates, PolicyInput, make_policy
from offload_client.policy.joules import sending_floor_mj, sent_mj

pytestmark = pytest.mark.unit


def measured(local: float, remote: float | None = None, samples: int = 5) -> Estimates:
    est = Estimates()
    for _ in range(samples):
        est.local_ms.update(local)
        if remote is not None:
            est.remote_ms.update(remote)
    return est


def test_on_lte_at_two_frames_a_second_it_never_wakes_the_radio() -> None:
    """Local 160 ms on a phone core is ~290 mJ; the LTE radio would spend 530 mJ of tail per frame."""
    policy, est = make_policy("adaptive-energy"), Estimates()
    decisions = []
    for i in range(60):
        inp = PolicyInput(i, est, 500.0, True, since_remote_s=float(i), frame_interval_s=0.5 if i else None)
        decisions.append(policy.decide(inp))
        est.local_ms.update(160.0)
    assert all(d.where == Where.LOCAL and not d.shadow and not d.race for d in decisions)
    assert decisions[1].reason.startswith("adaptive-energy: the device ~290 mJ")  # one run of the device tells
    assert decisions[0].reason == "adaptive-energy: measuring the device first"
    # 0.5 s of tail per frame, and waking the idle radio (12.6 J) repaid within 30 s: 60 frames, 210 mJ each.
    assert "~290 mJ" in decisions[-1].reason and "~740 mJ" in decisions[-1].reason


def test_where_the_radio_is_cheap_it_measures_the_link_and_sends() -> None:
    policy = Adaptive(objective="energy")
    first = policy.decide(PolicyInput(5, measured(160.0), 500.0, True, radio=WIFI, frame_interval_s=0.5))
    # It measures the link at once (the device's run is known), hedged: the device runs only if no answer
    # is back by its latest start, so a link that answers in time costs no device run.
    assert first.where == Where.REMOTE and first.seed and not first.race and first.jpeg_quality == 35
    inp = PolicyInput(9, measured(160.0, 200.0), 500.0, True, radio=WIFI, radio_quiet_s=0.3, frame_interval_s=0.5)
    d = policy.decide(inp)
    assert d.where == Where.REMOTE and "mJ" in d.reason, d.reason


def test_energy_never_buys_a_missed_deadline() -> None:
    inp = PolicyInput(9, measured(600.0, 200.0), 500.0, True, radio_quiet_s=0.3, frame_interval_s=0.5)
    assert Adaptive(objective="energy").decide(inp).where == Where.REMOTE


def test_an_accuracy_floor_rules_out_the_cheaper_path() -> None:
    est = measured(160.0, 200.0)
    inp = PolicyInput(9, est, 500.0, True, radio_quiet_s=0.3, frame_interval_s=0.5)
    accuracy = {Where.LOCAL: 0.90, Where.REMOTE: 0.97}
    assert Adaptive(objective="energy", accuracy=accuracy).decide(inp).where == Where.LOCAL
    d = Adaptive(objective="energy", accuracy=accuracy, accuracy_floor=0.95).decide(inp)
    assert d.where == Where.REMOTE and "accurate enough" in d.reason


def test_a_frame_sent_inside_the_tail_costs_less_than_one_that_wakes_the_radio() -> None:
    """Batching: the second of two frames 1 s apart pays 1 s of tail; one sent 30 s later a promotion
    and a whole new tail (Huang et al.: 11.6 s at 1060 mW, 12.3 J)."""
    inside = PolicyInput(0, Estimates(), 500.0, True, radio_quiet_s=1.0)
    idle = PolicyInput(0, Estimates(), 500.0, True, radio_quiet_s=30.0)
    assert sent_mj(inside, 300.0, 24_000, 0.0) == pytest.approx(1060 + 1288.04 * 0.3 + 438.39 * 0.192, rel=1e-3)
    assert sent_mj(idle, 300.0, 24_000, 0.0) - sent_mj(inside, 300.0, 24_000, 0.0) == pytest.approx(
        LTE.promotion_s * LTE.promotion_mw + LTE.tail_mj(LTE.tail_s) - 1060, rel=1e-3
    )
    # The floor: frames further apart than the tail pay all of it, however fast the link.
    sparse = PolicyInput(0, Estimates(), 500.0, True, frame_interval_s=20.0)
    assert sending_floor_mj(sparse, 0, 0.0) == pytest.approx(LTE.tail_mj(LTE.tail_s))


def test_a_device_near_the_deadline_is_judged_by_its_mean_and_a_costly_server_is_not_probed() -> None:
    """A device at ~180 ms of a 250 ms deadline, its spread reaching past it, still costs less than LTE."""
    est = measured(160.0)
    for ms in (230.0, 100.0, 230.0):  # mean under 250 ms, pessimistic time over it
        est.local_ms.update(ms)
    assert est.local_ms.high is not None and est.local_ms.high > 250
    d = Adaptive(objective="energy").decide(PolicyInput(9, est, 250.0, True, frame_interval_s=0.5))
    assert d.where == Where.LOCAL and not d.shadow and "could not cost less" in d.reason
    # Measured, and clearly dearer than the device: no probe, however long since the last.
    est = measured(200.0, 200.0)
    inp = PolicyInput(9, est, 500.0, True, since_remote_s=60.0, radio_quiet_s=30.0, frame_interval_s=5.0)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.LOCAL and not d.shadow, d.reason


def test_a_cheaper_server_kept_out_by_late_answers_is_probed_whole() -> None:
    """On Wi-Fi the server costs ~100 mJ a frame against the device's ~290, but lately answers late: it is
    probed with whole frames in races (a thumbnail would teach the link only, never the late share)."""
    est = measured(160.0, 420.0)
    for _ in range(5):
        est.remote_late.update(1.0)
    inp = PolicyInput(9, est, 500.0, True, since_remote_s=5.0, radio=WIFI, radio_quiet_s=5.0, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.REMOTE and d.race and not d.shadow, d.reason


def test_the_smallest_frames_bytes_are_part_of_the_floor_and_one_encoding_tells_them() -> None:
    """On 3G a device at 340 ms (~616 mJ) is dearer than the floor and its margin (525 mJ x 1.15) until the
    bytes count: 24 KB up is ~170 mJ more."""
    policy, est = Adaptive(objective="energy"), Estimates()
    first = policy.decide(PolicyInput(0, est, 500.0, True, radio=THREE_G))
    assert first.where == Where.LOCAL and first.encode_at == 35  # the device measured, the frame encoded
    est.local_ms.update(340.0)
    inp = PolicyInput(1, est, 500.0, True, radio=THREE_G, frame_interval_s=0.5)
    assert policy.decide(inp).where == Where.REMOTE  # bytes unknown: the floor is under the device's
    est.jpeg.update(35, 24_000)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.LOCAL and d.encode_at is None and not d.shadow, d.reason
    assert "~616 mJ" in d.reason and "~692 mJ" in d.reason


def test_a_few_slow_device_runs_do_not_wake_a_3g_radio() -> None:
    """Three runs at 340 ms (~616 mJ) and two at 600 ms (a busy core): their running mean (~479 ms, ~870 mJ)
    is over the 3G floor and its margin (692 mJ x 1.15); a typical run is not. The device keeps the frames."""
    est = Estimates()
    est.jpeg.update(35, 24_000)
    for ms in (340.0, 340.0, 340.0, 600.0, 620.0):
        est.local_ms.update(ms)
        est.local_fit.update(3, ms)
    inp = PolicyInput(5, est, 500.0, True, radio=THREE_G, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.LOCAL and not d.shadow and "~616 mJ" in d.reason, d.reason
    for ms in (600.0, 620.0):  # now most runs are slow: the device is dearer, and the link is measured
        est.local_ms.update(ms)
        est.local_fit.update(3, ms)
    assert Adaptive(objective="energy").decide(inp).where == Where.REMOTE


def test_one_stalled_device_run_does_not_wake_an_lte_radio() -> None:
    """Nine runs at ~380 ms and one 1.8 s stall (a busy phone): the runs' mean (518 ms) is past the 500 ms
    deadline, but a typical run is in time and cheaper than LTE's floor. The device keeps the frames."""
    est = Estimates()
    est.jpeg.update(35, 24_000)
    for ms in [380.0, 360.0, 400.0] * 3 + [1760.0]:
        est.local_ms.update(ms)
        est.local_fit.update(3, ms)
    assert est.local()[0] > 500.0
    inp = PolicyInput(10, est, 500.0, True, radio=LTE, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.LOCAL and not d.shadow and "could not cost less" in d.reason, d.reason


def test_after_one_late_answer_the_cheaper_server_is_sent_hedged_and_after_two_raced() -> None:
    """On Wi-Fi the server (~100 mJ) is cheaper than the device (~290 mJ). One late answer among answers in
    time lifts the late share to 0.2: the frame goes out hedged, the device run only if this answer is late
    too (a race the device wins pays both paths). A second late answer is a pattern: races, where the
    device's answer is there in time. On LTE a race costs more than it saves: probes keep their pace."""
    est = measured(160.0, 420.0)
    for late in [0.0] * 10 + [1.0]:
        est.remote_late.update(late)
    wifi = PolicyInput(9, est, 500.0, True, since_remote_s=0.2, radio=WIFI, radio_quiet_s=0.2, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(wifi)
    assert d.where == Where.REMOTE and not d.race and not d.shadow and "hedged" in d.reason, d.reason
    est.remote_late.update(1.0)
    d = Adaptive(objective="energy").decide(wifi)
    assert d.where == Where.REMOTE and d.race, d.reason
    slow = replace(wifi, estimates=measured(160.0, 520.0))  # no late answer, but the link itself is past it
    d = Adaptive(objective="energy").decide(slow)
    assert d.where == Where.REMOTE and d.race, d.reason
    for _ in range(3):  # the device won the last three races: racing on would pay both paths for nothing
        slow.estimates.race_won.update(0.0)
    d = Adaptive(objective="energy").decide(slow)
    assert d.where == Where.LOCAL and not d.race and not d.shadow, d.reason
    est = measured(500.0, 420.0)  # a slow device (~900 mJ): the LTE server is cheaper, not by half
    est.remote_late.update(1.0)
    lte = PolicyInput(9, est, 600.0, True, since_remote_s=0.2, radio_quiet_s=0.2, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(lte)
    assert d.where == Where.LOCAL and not d.race and not d.shadow, d.reason


def test_the_device_is_probed_only_while_it_could_become_the_cheaper_path() -> None:
    """Every 20th frame the latency objective runs the device to keep its time known. On Wi-Fi a device at
    ~290 mJ against ~65 mJ sent would need its time halved to pay: no probe. At ~1.8x, it is probed."""
    inp = PolicyInput(19, measured(160.0, 200.0), 500.0, True, radio=WIFI, radio_quiet_s=0.3, frame_interval_s=0.5)
    d = Adaptive(objective="energy").decide(inp)
    assert d.where == Where.REMOTE and "probe" not in d.reason, d.reason
    close = PolicyInput(19, measured(65.0, 200.0), 500.0, True, radio=WIFI, radio_quiet_s=0.3, frame_interval_s=0.5)
    assert Adaptive(objective="energy").decide(close).reason == "adaptive: probe of the local path"


def test_a_device_barely_dearer_than_the_floor_is_kept_the_floor_is_a_bound_no_link_reaches() -> None:
    est = measured(300.0)  # ~544 mJ on 3G, its floor with 24 KB ~692 mJ
    est.jpeg.update(35, 24_000)
    inp = PolicyInput(1, est, 500.0, True, radio=THREE_G, frame_interval_s=0.5)
    est.local_ms.update(420.0)  # ~661 mJ a frame: dearer than the floor, not by the hysteresis
    assert Adaptive(objective="energy").decide(inp).where == Where.LOCAL
    for _ in range(10):
        est.local_ms.update(480.0)  # ~870 mJ: it may pay
    assert Adaptive(objective="energy").decide(inp).where == Where.REMOTE


def test_with_an_accuracy_floor_it_sends_the_fewest_bytes_that_still_read_enough() -> None:
    """On Wi-Fi the server is cheaper; q50 reads 0.925 of the words, q35 0.90: with a floor of 0.92 the frame
    goes at q50, the cheapest quality above it. Without a floor, the latency objective's quality (q90)."""
    est = measured(300.0, 80.0)
    est.encode_ms.update(5.0)
    est.server_ms.update(40.0)
    est.jpeg.update(90, 60_000)  # the other qualities scaled from it (q50: 18 KB, q35: 13 KB)
    for size, ms in ((60_000, 40.0), (13_000, 16.0), (27_000, 23.0), (18_000, 19.0)):
        est.link.update(size, ms)
    table = ((90, 0.94), (70, 0.935), (50, 0.925), (35, 0.90))
    inp = PolicyInput(9, est, 500.0, True, radio=WIFI, radio_quiet_s=0.3, frame_interval_s=0.5,
                      remote_jpeg_accuracy=table)  # fmt: skip
    accuracy = {Where.LOCAL: 0.85, Where.REMOTE: 0.94}
    floored = Adaptive(objective="energy", accuracy=accuracy, accuracy_floor=0.92).decide(inp)
    assert floored.where == Where.REMOTE and floored.jpeg_quality == 50, floored.reason
    free = Adaptive(objective="energy", accuracy=accuracy).decide(inp)
    assert free.where == Where.REMOTE and free.jpeg_quality == 90, free.reason
