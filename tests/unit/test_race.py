"""Racing both paths from the start: when the accuracy objective does it, and how a raced frame ends."""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import pytest

from offload_client import AsyncOffloadClient, OffloadClient, Where
from offload_client.policy import Adaptive, Decision, Estimates, Policy, PolicyInput
from offload_client.policy.breaker import BreakerState
from offload_client.policy.odds import Prediction, expected_race_gain
from tests.unit.fakes import ScriptedTransport, SlowAsyncTransport, SlowTransport, red_frame, very_slow_device_model

pytestmark = pytest.mark.unit


def unsure(local: tuple[float, float], remote: tuple[float, float]) -> Estimates:
    """Both paths alternate between two times: a mean in the middle and a tail at the slower one."""
    est = Estimates()
    for _ in range(5):
        for ms in local:
            est.local_ms.update(ms)
        for ms in remote:
            est.remote_ms.update(ms)
    return est


def test_adaptive_accuracy_races_when_neither_path_is_sure_of_the_deadline() -> None:
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}
    est = unsure(local=(200, 480), remote=(150, 650))  # each misses a 400 ms deadline now and then
    inp = PolicyInput(9, est, 400.0, True, since_remote_s=0.1)
    d = Adaptive(objective="accuracy", accuracy=same).decide(inp)
    assert d.where == Where.REMOTE and d.race and "racing both paths" in d.reason, d.reason
    assert not d.prefer_remote  # equally accurate: the first answer serves
    better = {Where.LOCAL: 0.8, Where.REMOTE: 0.95}
    assert Adaptive(objective="accuracy", accuracy=better).decide(inp).prefer_remote
    # The latency objective races these close and noisy paths too, for speed: the first answer serves.
    d = Adaptive(objective="latency").decide(inp)
    assert d.race and not d.prefer_remote and "sooner" in d.reason, d.reason

    hopeless = unsure(local=(200, 480), remote=(1500, 1700))  # the link is far past the deadline
    d = Adaptive(objective="accuracy", accuracy=same).decide(PolicyInput(9, hopeless, 400.0, True, since_remote_s=0.1))
    assert d.where == Where.LOCAL and not d.race

    # A link sure of the deadline while the device is not: sent, and the device races it from the start.
    sure = unsure(local=(200, 480), remote=(150, 170))
    d = Adaptive(objective="accuracy", accuracy=same).decide(PolicyInput(9, sure, 400.0, True, since_remote_s=0.1))
    assert d.where == Where.REMOTE and d.race and "only remote" in d.reason, d.reason
    d = Adaptive(objective="latency").decide(PolicyInput(9, sure, 400.0, True, since_remote_s=0.1))
    assert d.where == Where.REMOTE and not d.race

    unlikely = unsure(local=(200, 480), remote=(450, 650))  # in time only at its very best: no fair chance
    d = Adaptive(objective="accuracy", accuracy=same).decide(PolicyInput(9, unlikely, 400.0, True, since_remote_s=0.1))
    assert not d.race, d.reason

    missing = unsure(local=(200, 480), remote=(150, 650))
    for _ in range(5):
        missing.remote_late.update(1.0)  # most remote answers lately did not serve their frame
    d = Adaptive(objective="accuracy", accuracy=same).decide(PolicyInput(9, missing, 400.0, True, since_remote_s=0.1))
    assert not d.race


def test_adaptive_accuracy_races_equal_paths_only_where_the_race_makes_a_miss_less_likely() -> None:
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}

    def race(est: Estimates) -> Decision:
        return Adaptive(objective="accuracy", accuracy=same).decide(
            PolicyInput(9, est, 400.0, True, since_remote_s=0.1)
        )

    # The link model gives the remote path an even chance, and nothing says otherwise: raced.
    d = race(unsure(local=(200, 480), remote=(150, 650)))
    assert d.race and "fewer misses" in d.reason, d.reason
    # But the round trips lately came back in time one in ten (the model overrates this link): not raced.
    overrated = unsure(local=(200, 480), remote=(150, 650))
    for in_time in (1, 0, 0, 0, 0, 0, 0, 0, 0, 0):
        overrated.remote_in_time.update(in_time)
    assert not race(overrated).race
    # Nor where the device has won the races lately (on content that makes the device late, the server
    # is slower too): the probes keep that record, and a race the server wins makes racing pay again.
    lost = unsure(local=(200, 480), remote=(150, 650))
    for _ in range(5):
        lost.race_won.update(0.0)
    assert not race(lost).race
    lost.race_won.update(1.0)
    assert race(lost).race
    # The race's encoding runs on the device's core: where it would make the device late as often as
    # the remote answer saves it, no race.
    costly = unsure(local=(300, 420), remote=(150, 650))
    assert race(costly).race
    for _ in range(10):
        costly.encode_ms.update(60.0)
    assert not race(costly).race


def test_the_router_keeps_the_record_of_round_trips_in_time_and_of_races_won(tiny_repo: Path) -> None:
    link = SlowTransport(0.3)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=200, transport=link) as client:
        for _ in range(3):
            client.infer(red_frame())  # the device wins; the answer comes at 300 ms, past the 200 ms deadline
            link.settle()
        client.infer(red_frame())  # takes in the last late answer
        late = client.estimates.remote_in_time
        assert late.samples >= 3 and late.value == 0.0
        assert client.estimates.race_won.samples == 4 and client.estimates.race_won.value == 0.0
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=1000, transport=SlowTransport(0.05),
    ) as client:  # fmt: skip
        very_slow_device_model(client)
        client.infer(red_frame())  # the server wins, well in time
        assert client.estimates.remote_in_time.value == 1.0 and client.estimates.race_won.value == 1.0


def test_raced_calls_that_go_silent_open_the_breaker_and_the_call_that_waited_out_the_dark_teaches_nothing(
    tiny_repo: Path,
) -> None:
    # Two raced calls time out with no answer (the link went dark); the third waited the dark out and answers
    # after 300 ms, well within the 2 s a normal call may take: it says when the link came back, not how fast it is.
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=1000,
        transport=(link := ScriptedTransport([-0.1, -0.1, 0.3])),
    ) as client:  # fmt: skip
        breaker = client._router.breaker
        for _ in range(2):
            client.infer(red_frame())  # the device wins each race; the call then goes silent
            link.settle()
        blocked = client.infer(red_frame())  # takes in the second silence: the breaker is open
        assert blocked.where == Where.LOCAL and blocked.reason == "remote unavailable: circuit open"
        time.sleep(breaker.wait_s)  # the backoff, jittered
        probe = client.infer(red_frame())  # half-open: a background probe, the frame answered locally
        assert probe.where == Where.LOCAL and probe.reason.startswith("remote recovering: probing")
        link.settle()
        client.infer(red_frame())  # takes in the probe's answer: the link is back, and nothing it took is learned
        est = client.estimates
        assert breaker.state == BreakerState.CLOSED
        assert est.link.samples == deque() and est.remote_ms.value is None


def test_the_expected_gain_of_a_race_is_largest_for_equal_noisy_paths() -> None:
    assert expected_race_gain(Prediction(300, 300), Prediction(300, 300)) == 0.0  # no spread, nothing to win
    sd = 80 / 1.6  # `high` is the mean plus about 1.6 standard deviations
    equal = expected_race_gain(Prediction(300, 380), Prediction(300, 380))
    assert equal == pytest.approx(math.hypot(sd, sd) / math.sqrt(2 * math.pi), rel=1e-6)  # θ·φ(0)
    assert expected_race_gain(Prediction(300, 380), Prediction(500, 580)) < 0.05 * equal  # one far ahead


def test_adaptive_latency_races_only_close_noisy_paths_on_an_idle_link() -> None:
    noisy = unsure(local=(250, 450), remote=(250, 450))  # same means, wide spreads
    d = Adaptive(objective="latency").decide(PolicyInput(9, noisy, 1000.0, True, since_remote_s=0.1))
    assert d.where == Where.REMOTE and d.race and not d.prefer_remote, d.reason
    busy = PolicyInput(9, noisy, 1000.0, True, probe_in_flight=True, since_remote_s=0.1)
    assert not Adaptive(objective="latency").decide(busy).race  # a call still out: the race would queue
    failing = unsure(local=(250, 450), remote=(250, 450))
    for _ in range(5):
        failing.remote_late.update(1.0)  # most calls lately went unanswered in time (e.g. an outage began)
    assert not Adaptive(objective="latency").decide(PolicyInput(9, failing, 1000.0, True, since_remote_s=0.1)).race
    lost = unsure(local=(250, 450), remote=(250, 450))
    for _ in range(5):
        lost.race_won.update(0.0)  # the model sees a gain, but the device won every race lately
    assert not Adaptive(objective="latency").decide(PolicyInput(9, lost, 1000.0, True, since_remote_s=0.1)).race
    lost.race_won.update(1.0)  # a probe (a race too) won: racing pays again
    assert Adaptive(objective="latency").decide(PolicyInput(9, lost, 1000.0, True, since_remote_s=0.1)).race
    steady = unsure(local=(340, 360), remote=(340, 360))  # same means, little spread: nothing to win
    assert not Adaptive(objective="latency").decide(PolicyInput(9, steady, 1000.0, True, since_remote_s=0.1)).race
    apart = unsure(local=(250, 450), remote=(650, 850))  # the device is well ahead
    d = Adaptive(objective="latency").decide(PolicyInput(9, apart, 1000.0, True, since_remote_s=0.1))
    assert d.where == Where.LOCAL and not d.race, d.reason


def test_adaptive_accuracy_races_for_a_more_accurate_server_that_may_answer_in_time() -> None:
    est = unsure(local=(250, 270), remote=(250, 650))  # the device is sure of 400 ms; the link is not
    inp = PolicyInput(9, est, 400.0, True, since_remote_s=0.1)
    better = {Where.LOCAL: 0.8, Where.REMOTE: 0.95}
    d = Adaptive(objective="accuracy", accuracy=better).decide(inp)
    assert d.where == Where.REMOTE and d.race and d.prefer_remote and "more accurate answer" in d.reason, d.reason
    # Equally accurate: nothing to gain from the link, so the device that is sure of the deadline serves.
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}
    d = Adaptive(objective="accuracy", accuracy=same).decide(inp)
    assert d.where == Where.LOCAL and not d.race, d.reason


def test_for_a_more_accurate_answer_a_small_chance_is_worth_a_race_that_does_not_make_the_device_late() -> None:
    better = {Where.LOCAL: 0.8, Where.REMOTE: 0.95}

    def race(est: Estimates) -> bool:
        policy = Adaptive(objective="accuracy", accuracy=better)
        return policy.decide(PolicyInput(9, est, 400.0, True, since_remote_s=0.1)).race

    # The device is sure of 400 ms; the link came back in time one round trip in ten lately.
    slim = unsure(local=(250, 270), remote=(250, 650))
    for in_time in (1, 0, 0, 0, 0, 0, 0, 0, 0, 0):
        slim.remote_in_time.update(in_time)
    for _ in range(5):
        slim.race_won.update(0.0)  # (the races' record gates only the races for the deadline)
    assert race(slim)
    for _ in range(10):
        slim.remote_in_time.update(0)  # one in a hundred: no longer worth the bytes
    assert not race(slim)
    # A device near the deadline, whose run the race's encoding would push past it: no race either.
    near = unsure(local=(360, 380), remote=(250, 650))
    assert race(near)
    for _ in range(10):
        near.encode_ms.update(40.0)
    assert not race(near)


def test_with_a_more_accurate_server_the_accuracy_objective_measures_by_racing() -> None:
    # Measuring either path must not cost the app the better answer: the remote path is measured with
    # a race the server's answer wins when in time (not a shadow the device answers), and the device
    # is measured by racing it against a frame that goes out anyway (not by keeping the frame local).
    better = {Where.LOCAL: 0.8, Where.REMOTE: 0.95}
    policy = Adaptive(objective="accuracy", accuracy=better)
    seed = policy.decide(PolicyInput(0, Estimates(), 400.0, True))
    assert seed.where == Where.REMOTE and seed.race and seed.prefer_remote and seed.seed, seed
    assert seed.jpeg_quality == 35 and "racing the device model" in seed.reason
    # Equally accurate paths: the first answer serves the measuring frame, as for the latency objective.
    same = Adaptive(objective="accuracy", accuracy={Where.LOCAL: 1.0, Where.REMOTE: 1.0})
    measuring = same.decide(PolicyInput(0, Estimates(), 400.0, True))
    assert measuring.race and not measuring.prefer_remote

    # Both paths sure of 600 ms, even one after the other (the device started at the hedge): the server.
    sure = unsure(local=(250, 270), remote=(200, 220))
    decisions = [policy.decide(PolicyInput(i, sure, 600.0, True, since_remote_s=0.1)) for i in range(20)]
    assert all(d.where == Where.REMOTE and d.prefer_remote for d in decisions)
    assert [i for i, d in enumerate(decisions) if d.race] == [policy.probe_every - 1]
    assert "racing the device model to measure it" in decisions[policy.probe_every - 1].reason
    # At 400 ms each path alone is in time, but a device started at the hedge would not be: raced.
    tight = policy.decide(PolicyInput(5, sure, 400.0, True, since_remote_s=0.1))
    assert tight.where == Where.REMOTE and tight.race and tight.prefer_remote, tight.reason


def test_a_seed_that_wins_its_race_serves_the_frame_and_is_not_judged(tiny_repo: Path) -> None:
    better = {Where.LOCAL: 0.8, Where.REMOTE: 0.95}
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Adaptive(objective="accuracy", accuracy=better), deadline_ms=1000,
        transport=SlowTransport(0.05),
    ) as client:  # fmt: skip
        seed = client.infer(red_frame())
        est = client.estimates
        assert seed.where == Where.REMOTE and seed.classes[0].label == "remote" and seed.jpeg_quality == 35
        assert est.remote_ms.samples == 1 and est.remote_late.samples == 0 and est.local_ms.samples == 1


class Racer(Policy):
    """Races every frame, as the accuracy objective does when neither path is sure of the deadline."""

    name = "racer"

    def __init__(self, prefer_remote: bool = False) -> None:
        self.prefer_remote = prefer_remote

    def decide(self, inp: PolicyInput) -> Decision:
        return Decision(Where.REMOTE, "racer", race=True, prefer_remote=self.prefer_remote)


def test_a_raced_frame_takes_the_first_answer_and_a_lost_race_is_no_failure(tiny_repo: Path) -> None:
    # A fast device beats a 300 ms link: no fallback, no error; the answer then teaches the estimators.
    link = SlowTransport(0.3)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=1000, transport=link) as client:
        start = time.perf_counter()
        first = client.infer(red_frame())
        waited = time.perf_counter() - start
        link.settle()
        client.infer(red_frame())  # the late answer is taken in before this frame is decided
        est, breaker = client.estimates, client._router.breaker
        assert est.remote_ms.samples >= 1 and est.remote_ms.value is not None and est.remote_ms.value >= 300
        assert breaker.failures == 0
    assert first.where == Where.LOCAL and first.error is None and first.classes[0].label == "red"
    assert first.reason == "racer; the device answered first" and first.uplink_bytes > 0 and first.raced
    assert waited < 0.3  # the device model ran at once, not after a hedge

    # A very slow device: the server's answer at 150 ms serves the frame and the device run is stopped.
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=1000,
        transport=SlowTransport(0.15),
    ) as client:  # fmt: skip
        very_slow_device_model(client)
        start = time.perf_counter()
        won = client.infer(red_frame())
        waited = time.perf_counter() - start
    assert won.where == Where.REMOTE and won.classes[0].label == "remote"
    assert won.reason == "racer; the server answered first" and waited < 1.0 and won.raced


def test_the_more_accurate_answer_is_waited_for_until_the_deadline_only(tiny_repo: Path) -> None:
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(prefer_remote=True), deadline_ms=1000,
        transport=SlowTransport(0.2),
    ) as client:  # fmt: skip
        result = client.infer(red_frame())
        device_runs = client.estimates.local_ms.samples
    # The device was first, but the remote answer came in time: it serves, and the device run still taught.
    assert result.where == Where.REMOTE and result.classes[0].label == "remote" and device_runs == 1

    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(prefer_remote=True), deadline_ms=300,
        transport=SlowTransport(2.0),
    ) as client:  # fmt: skip
        late = client.infer(red_frame())
    # The 2 s answer is not waited for: the device's answer serves at the 300 ms deadline (less a 2 % margin
    # for the hand-over), not before it and not long after it.
    assert late.where == Where.LOCAL and late.error is None
    assert 0.98 * 300 - 5 <= late.latency_ms < 300 + 200, late.latency_ms


async def test_the_async_client_races_alike(tiny_repo: Path) -> None:
    async with AsyncOffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(), deadline_ms=1000, transport=SlowAsyncTransport(0.3)
    ) as client:
        first = await client.infer(red_frame())
    assert first.where == Where.LOCAL and first.reason == "racer; the device answered first"
    async with AsyncOffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Racer(prefer_remote=True), deadline_ms=1000,
        transport=SlowAsyncTransport(0.2),
    ) as client:  # fmt: skip
        preferred = await client.infer(red_frame())
    assert preferred.where == Where.REMOTE and preferred.reason == "racer; the server answered first"


def test_the_hedge_starts_the_device_just_in_time_for_the_deadline(tiny_repo: Path) -> None:
    """A device known to take ~250 ms and a 300 ms deadline: past a hedge at ~50 ms the device runs and
    answers at the deadline. A hedge at the deadline (answer at ~550 ms) or none at all (~250 ms) fails."""
    link = ScriptedTransport([0.02] * 4 + [2.0])  # a fast link the estimators learn, then an answer too late
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy="always-remote", deadline_ms=300, transport=link
    ) as client:
        for _ in range(4):
            assert client.infer(red_frame()).where == Where.REMOTE
        very_slow_device_model(client, seconds=0.25)
        for _ in range(8):  # what this device has taken lately (its estimator's high bound: ~250 ms)
            client.estimates.local_ms.update(250.0)
        hedged = client.infer(red_frame())
    assert hedged.where == Where.LOCAL and hedged.reason.startswith("fallback"), hedged.reason
    assert 300 - 40 <= hedged.latency_ms < 300 + 150, hedged.latency_ms
