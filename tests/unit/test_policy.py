"""Policy choices, the circuit breaker and the privacy gate, with an in-memory fake transport."""

from __future__ import annotations

import random
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from offload_client import AsyncOffloadClient, InMemoryTransport, OffloadClient, TransportError, Where
from offload_client.policy import (
    Adaptive,
    AlwaysLocal,
    AlwaysRemote,
    CircuitBreaker,
    Decision,
    DeviceOption,
    Estimates,
    Policy,
    PolicyInput,
)
from offload_client.policy.base import THUMBNAIL_SCALE
from offload_client.policy.breaker import BreakerState
from offload_client.policy.estimators import ContentFit, Ewma
from offload_core.engine.image import decode_image
from offload_core.proto import offload_pb2 as pb
from tests.unit.fakes import SlowAsyncTransport, SlowTransport, classify_remotely, red_frame, very_slow_device_model

pytestmark = pytest.mark.unit


def estimates(local: float | None, remote: float | None, samples: int = 5) -> Estimates:
    est = Estimates()
    for _ in range(samples):
        if local is not None:
            est.local_ms.update(local)
        if remote is not None:
            est.remote_ms.update(remote)
    return est


def test_static_policies() -> None:
    inp = PolicyInput(0, Estimates(), 100.0, remote_allowed=True)
    assert AlwaysLocal().decide(inp).where == Where.LOCAL
    assert AlwaysRemote().decide(inp).where == Where.REMOTE
    blocked = PolicyInput(0, Estimates(), 100.0, remote_allowed=False, remote_blocked_reason="privacy: local-only")
    decision = AlwaysRemote().decide(blocked)
    assert decision.where == Where.LOCAL and decision.reason == "privacy: local-only"


def test_adaptive_measures_the_remote_path_by_racing_the_device_before_choosing() -> None:
    policy, est = Adaptive(seed_samples=2), Estimates()
    seen = []
    for i in range(3):
        d = policy.decide(PolicyInput(i, est, 1000.0, True))
        seen.append((d.where, d.race, d.jpeg_quality))
        est.local_ms.update(80.0)  # the device ran on the frame
        if d.race:
            est.remote_ms.update(50.0)
    # Two measuring races at different qualities (to separate RTT from throughput), then a real choice.
    assert seen[:2] == [(Where.REMOTE, True, 35), (Where.REMOTE, True, 50)]
    assert seen[2][:2] == (Where.REMOTE, False)


def test_adaptive_sends_one_shadow_probe_at_a_time() -> None:
    d = Adaptive().decide(PolicyInput(0, Estimates(), 1000.0, True, probe_in_flight=True))
    assert d.where == Where.LOCAL and not d.shadow and d.reason == "adaptive: measuring the local path"


def test_adaptive_picks_the_faster_path_and_says_why() -> None:
    d = Adaptive().decide(PolicyInput(1, estimates(local=80, remote=200), 1000.0, True))
    assert d.where == Where.LOCAL
    assert "80" in d.reason and "200" in d.reason
    assert d.predicted_local_ms == pytest.approx(80) and d.predicted_remote_ms == pytest.approx(200)
    assert Adaptive().decide(PolicyInput(1, estimates(local=300, remote=100), 1000.0, True)).where == Where.REMOTE


def test_content_fit_predicts_a_frames_cost_from_the_last_frames_boxes() -> None:
    fit = ContentFit()
    for seen, boxes in enumerate([0, 2, 4, 6, 8, 0, 2, 4]):
        assert (fit.predict(boxes) is None) == (seen < 6)  # a line needs six frames with three box counts
        fit.update(boxes, 100.0 + 50.0 * boxes)
    assert fit.predict(0) == pytest.approx(100.0, abs=1.0)
    assert fit.predict(10) == pytest.approx(600.0, abs=5.0)
    assert ContentFit().predict(3) is None  # no opinion before the boxes vary


def test_adaptive_sends_busy_frames_remote_and_keeps_empty_ones_local() -> None:
    """The device's cost grows with the words in view much faster than the server's."""
    est = estimates(local=None, remote=250)
    for boxes in [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9]:  # a video's content changes slowly
        for fit, average, ms in (
            (est.local_fit, est.local_ms, 80.0 + 60.0 * boxes),  # device: 80 ms empty,
            (est.server_fit, est.server_ms, 40.0 + 10.0 * boxes),
        ):  # 620 ms with 9 words
            fit.update(boxes, ms)
            average.update(ms)
    est.encode_ms.update(5.0)
    est.jpeg.update(90, 40_000)
    for size, ms in [(20_000, 60.0), (40_000, 100.0), (30_000, 80.0), (10_000, 40.0)]:
        est.link.update(size, ms)
    policy = Adaptive(hysteresis=0.0)
    est.content = 0
    assert policy.decide(PolicyInput(10, est, 1000.0, True, since_remote_s=0.1)).where == Where.LOCAL
    est.content = 9
    assert policy.decide(PolicyInput(11, est, 1000.0, True, since_remote_s=0.1)).where == Where.REMOTE


def test_content_is_trusted_only_while_it_predicts_better_than_the_average() -> None:
    est = Estimates()
    rng = np.random.default_rng(0)
    for _ in range(30):  # every word costs 60 ms, but the next frame shows other words: no persistence
        boxes = int(rng.integers(0, 10))
        ms = 80.0 + 60.0 * boxes
        est.local_fit.update(boxes, ms)
        est.local_ms.update(ms)
    est.content = 9
    assert est.local_fit.predict(9) is not None
    # The line would only add its noise: the window's average serves, not moved by the last heavy frame.
    times = [ms for _, ms in est.local_fit.samples]
    assert est.local()[0] == pytest.approx(float(np.mean(times)))
    est.local_fit.update(9, 80.0 + 60.0 * 9)
    est.local_ms.update(80.0 + 60.0 * 9)
    assert est.local_ms.value is not None and est.local()[0] < est.local_ms.value - 50
    for i in range(30):  # now every word costs 60 ms and the words stay in view: the line predicts
        boxes = i // 3 % 10
        ms = 80.0 + 60.0 * boxes
        est.local_fit.update(boxes, ms)
        est.local_ms.update(ms)
    assert est.local()[0] == pytest.approx(620.0, abs=15.0)


def test_adaptive_hysteresis_keeps_the_current_path_for_small_differences() -> None:
    policy = Adaptive(hysteresis=0.15)  # it starts on the device
    assert policy.decide(PolicyInput(1, estimates(local=100, remote=90), 1000.0, True)).where == Where.LOCAL
    assert policy.decide(PolicyInput(2, estimates(local=100, remote=70), 1000.0, True)).where == Where.REMOTE
    # Local is now 5% better: not enough to switch back.
    assert policy.decide(PolicyInput(3, estimates(local=95, remote=100), 1000.0, True)).where == Where.REMOTE
    # 30% better: switch.
    assert policy.decide(PolicyInput(4, estimates(local=70, remote=100), 1000.0, True)).where == Where.LOCAL


def test_adaptive_prices_in_how_often_remote_answers_come_late() -> None:
    est = estimates(local=300, remote=200)
    assert Adaptive().decide(PolicyInput(1, est, 400.0, True)).where == Where.REMOTE
    for _ in range(5):
        est.remote_late.update(1.0)  # most remote answers lately missed the hedge: each cost 400 + 300 ms
    d = Adaptive().decide(PolicyInput(1, est, 400.0, True))
    assert d.where == Where.LOCAL and d.predicted_remote_ms is not None and d.predicted_remote_ms > 300
    # The server's model is the more accurate, but a link that misses this often is not "within the deadline".
    d = Adaptive(objective="accuracy").decide(PolicyInput(1, est, 400.0, True))
    assert d.where == Where.LOCAL and "only local" in d.reason


def test_adaptive_accuracy_prefers_the_path_that_meets_the_deadline() -> None:
    est = estimates(local=90, remote=80)
    for ms in (20, 160, 20, 160):  # the device: 90 ms on average, but a tail past the 100 ms deadline
        est.local_ms.update(ms)
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}
    d = Adaptive(objective="accuracy", accuracy=same).decide(PolicyInput(1, est, 100.0, True))
    assert d.where == Where.REMOTE and "deadline" in d.reason


def test_adaptive_latency_goes_by_the_mean_even_when_only_the_slower_path_meets_the_deadline() -> None:
    est = estimates(local=140, remote=None)  # a steady device, within the deadline
    for ms in (40, 160, 40, 160):
        est.remote_ms.update(ms)  # a faster link on average, but its tail is past the deadline
    assert est.remote_ms.value is not None and est.remote_ms.value < 100
    assert est.remote_ms.high is not None and est.remote_ms.high > 150
    d = Adaptive(hysteresis=0.0).decide(PolicyInput(1, est, 150.0, True))
    assert d.where == Where.REMOTE, d.reason


def test_adaptive_probes_the_other_path_now_and_then() -> None:
    policy = Adaptive(probe_every=10, probe_after_s=1.0)
    fresh = policy.decide(PolicyInput(5, estimates(local=50, remote=200), 1000.0, True, since_remote_s=0.2))
    assert fresh.where == Where.LOCAL and not fresh.shadow
    stale = policy.decide(PolicyInput(6, estimates(local=50, remote=200), 1000.0, True, since_remote_s=1.5))
    # The device is faster: a thumbnail of the frame times the link in the background, the device answers.
    assert stale.where == Where.LOCAL and stale.shadow and stale.probe_scale < 1 and not stale.race, stale.reason
    # The accuracy objective races the frame itself instead: the server's answer may serve it.
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}
    raced = Adaptive(objective="accuracy", accuracy=same, probe_after_s=1.0).decide(
        PolicyInput(6, estimates(local=50, remote=200), 1000.0, True, since_remote_s=1.5)
    )
    assert raced.race and raced.probe_scale == 1.0, raced.reason
    busy = PolicyInput(7, estimates(local=50, remote=200), 1000.0, True, probe_in_flight=True, since_remote_s=9)
    assert policy.decide(busy).where == Where.LOCAL
    remote_wins = [policy.decide(PolicyInput(i, estimates(local=300, remote=100), 1000.0, True)) for i in range(20)]
    assert [i for i, d in enumerate(remote_wins) if d.where == Where.LOCAL] == [9, 19]


class Scripted(Policy):
    """Plays back a list of decisions, one per frame."""

    name = "scripted"

    def __init__(self, *decisions: Decision) -> None:
        self.decisions = list(decisions)

    def decide(self, inp: PolicyInput) -> Decision:
        return self.decisions.pop(0)


def test_a_thumbnail_probe_times_the_link_for_a_fraction_of_the_bytes_and_teaches_only_the_link(
    tiny_repo: Path,
) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    received: list[tuple[int, ...]] = []

    def server(request: pb.InferRequest) -> pb.InferResponse:
        received.append(decode_image(request.encoded.data).shape[:2])
        return classify_remotely(request)

    policy = Scripted(
        Decision(Where.REMOTE, "the frame", jpeg_quality=35),
        Decision(Where.LOCAL, "a thumbnail", jpeg_quality=35, shadow=True, probe_scale=THUMBNAIL_SCALE),
        Decision(Where.LOCAL, "the device"),  # (the thumbnail's answer is taken in before this frame)
    )
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy=policy, transport=InMemoryTransport(server)) as oc:
        sent, probe, _ = (oc.infer(frame) for _ in range(3))
        est = oc.estimates
    assert received == [(240, 320), (120, 160)]
    assert probe.where == Where.LOCAL and probe.classes[0].label != "remote"  # its answer never serves
    assert 0 < probe.uplink_bytes < 0.4 * sent.uplink_bytes, (probe.uplink_bytes, sent.uplink_bytes)
    assert len(est.link.samples) == 2  # both timed the link...
    # ...but the frame's size, encoding and server time are the frame's alone
    assert est.jpeg.by_quality[35].samples == est.encode_ms.samples == est.server_ms.samples == 1
    assert est.remote_ms.samples == 2  # the thumbnail counts as the round trip its frame would have taken


def test_adaptive_probes_back_off_while_the_remote_path_stays_clearly_worse() -> None:
    policy = Adaptive(probe_after_s=1.0, probe_max_s=4.0)
    slow_link = estimates(local=100, remote=600)
    probes = [policy.decide(PolicyInput(i, slow_link, 1000.0, True, since_remote_s=s)).shadow for i, s in
              enumerate([1.1, 1.1, 2.1, 2.1, 4.1, 4.1, 4.1])]  # fmt: skip
    assert probes == [True, False, True, False, True, True, True]  # every 1, then 2, then 4 s (the cap)
    competitive = estimates(local=100, remote=110)
    policy.decide(PolicyInput(9, competitive, 1000.0, True, since_remote_s=0.1))
    assert policy.probe_interval_s == 1.0  # the remote path is in play again: measured every second


def test_adaptive_probes_do_not_back_off_on_a_link_model_that_cannot_tell_rtt_from_throughput() -> None:
    # After an outage the link model starts afresh: one small probe came back, and a large frame is
    # predicted as if all its time were transfer (600 ms here) - a guess, not a verdict.
    policy = Adaptive(probe_after_s=1.0, probe_max_s=8.0)
    guessed = estimates(local=100, remote=600)
    guessed.link.update(10_000, 60.0)
    assert not guessed.link.separated
    probes = []
    for i in range(4):
        d = policy.decide(PolicyInput(i, guessed, 1000.0, True, since_remote_s=1.1))
        probes.append((d.shadow, d.jpeg_quality))
        guessed.link.samples.append(guessed.link.samples[-1])  # (its answer: the same size, so still a guess)
    assert all(probe for probe, _ in probes)  # every second, until frames of several sizes have measured the link
    assert len({quality for _, quality in probes}) >= 3, probes  # and at several sizes, so that they can
    guessed.link.reset()
    for size, ms in ((10_000, 60.0), (20_000, 80.0), (40_000, 120.0), (80_000, 200.0)):
        guessed.link.update(size, ms)
    assert guessed.link.separated
    probes = [policy.decide(PolicyInput(i, guessed, 1000.0, True, since_remote_s=s)).shadow for i, s in
              enumerate([1.1, 2.1, 2.1, 4.1], start=4)]  # fmt: skip
    assert probes == [False, True, False, True]  # a measured verdict: now they back off (2 s, then 4 s)


def test_adaptive_races_the_device_with_an_apps_frame_sent_to_a_remote_path_it_knows_nothing_about() -> None:
    est = estimates(local=300, remote=100)
    policy = Adaptive()
    policy.decide(PolicyInput(0, est, 1000.0, True))
    for _ in range(3):
        est.race_won.update(0.0)  # races lost to the device while the link was dark
        est.remote_in_time.update(0.0)
    est.after_outage()  # e.g. a probe that waited out an outage reset what was known
    assert est.race_won.value is None and est.remote_in_time.value is None  # the dark taught nothing
    first = policy.decide(PolicyInput(1, est, 1000.0, True))
    assert first.where == Where.REMOTE and first.race  # never waiting on it: the device runs at once
    waiting = policy.decide(PolicyInput(2, est, 1000.0, True, probe_in_flight=True))
    assert waiting.where == Where.LOCAL and not waiting.race


def test_adaptive_accuracy_with_equal_paths_takes_the_one_more_likely_in_time() -> None:
    est = estimates(local=250, remote=180)
    for _ in range(5):  # remote: a lower mean (~200 ms) but a long tail; local: a steady 250 ms
        est.remote_ms.update(30)
        est.remote_ms.update(330)
    same = {Where.LOCAL: 1.0, Where.REMOTE: 1.0}
    inp = PolicyInput(9, est, 2000.0, True, since_remote_s=0.1)
    assert Adaptive(objective="latency", accuracy=same, hysteresis=0.0).decide(inp).where == Where.REMOTE
    assert Adaptive(objective="accuracy", accuracy=same, hysteresis=0.0).decide(inp).where == Where.LOCAL


def test_breaker_opens_backs_off_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        failures_to_open=2, base_backoff_s=1.0, max_backoff_s=4.0, clock=lambda: now[0], jitter=0.0
    )
    breaker.failure()
    assert breaker.allows()
    breaker.failure()
    assert breaker.state == BreakerState.OPEN and not breaker.allows()
    now[0] = 1.0
    assert breaker.allows() and breaker.state == BreakerState.HALF_OPEN
    breaker.failure()  # the probe failed: back off twice as long
    now[0] = 2.5
    assert not breaker.allows()
    now[0] = 3.0
    assert breaker.allows()
    breaker.success()
    assert breaker.state == BreakerState.CLOSED and breaker.backoff_s == 1.0


def test_breakers_that_opened_together_come_back_spread_out() -> None:
    """A server restart opens every phone's breaker at once: their first probes must not land at once."""
    waits = []
    for phone in range(50):
        breaker = CircuitBreaker(base_backoff_s=0.25, max_backoff_s=2.0, clock=lambda: 0.0, rng=random.Random(phone))
        breaker.failure()
        breaker.failure()
        breaker.state = BreakerState.HALF_OPEN
        breaker.failure()  # the first probe failed too: 0.5 s, jittered
        waits.append(breaker.wait_s)
    assert min(waits) >= 0.25 and max(waits) <= 0.75
    assert max(waits) - min(waits) >= 0.4  # spread over most of the jitter's range
    assert len({round(w, 3) for w in waits}) >= 40


def test_client_with_a_fake_transport_answers_every_frame_and_counts_bytes(tiny_repo: Path) -> None:
    fake = InMemoryTransport(classify_remotely)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy="always-remote", transport=fake) as client:
        remote = client.infer(red_frame())
    assert remote.where == Where.REMOTE and remote.classes[0].label == "remote" and remote.variant == "remote-fp32"
    assert remote.uplink_bytes == fake.bytes_sent > 0

    fake = InMemoryTransport(classify_remotely)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy="adaptive", transport=fake) as client:
        results = [client.infer(red_frame()) for _ in range(8)]
        learned = client.estimates.remote_ms.samples
    assert [r.frame_id for r in results] == list(range(8))
    assert sum(r.where == Where.REMOTE for r in results) >= 3  # the instant server wins its measuring races
    assert learned >= 3 and fake.requests >= 3
    assert sum(r.uplink_bytes for r in results) == fake.bytes_sent


def test_a_failing_server_falls_back_to_local_and_opens_the_breaker(tiny_repo: Path) -> None:
    def down(request: pb.InferRequest) -> pb.InferResponse:
        raise TransportError("UNAVAILABLE", "connection refused")

    fake = InMemoryTransport(down)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy="always-remote", transport=fake) as client:
        results = [client.infer(red_frame()) for _ in range(6)]
    assert all(r.where == Where.LOCAL and r.classes[0].label == "red" for r in results)
    assert results[0].reason.startswith("fallback: remote failed (UNAVAILABLE")
    assert results[-1].reason == "remote unavailable: circuit open"
    assert fake.requests == 2  # the breaker stopped paying for a dead server


def test_a_recovering_server_is_probed_in_the_background_not_with_the_apps_frames(tiny_repo: Path) -> None:
    up = [False]

    def flaky(request: pb.InferRequest) -> pb.InferResponse:
        if not up[0]:
            raise TransportError("UNAVAILABLE", "connection refused")
        return classify_remotely(request)

    fake = InMemoryTransport(flaky)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy="always-remote", transport=fake) as client:
        breaker = client._router.breaker
        breaker.base_backoff_s = breaker.max_backoff_s = breaker.backoff_s = 0.0  # probe at once
        assert [client.infer(red_frame()).where for _ in range(2)] == [Where.LOCAL, Where.LOCAL]
        up[0] = True
        probe = client.infer(red_frame())  # half-open: answered locally, the server measured in the background
        assert probe.where == Where.LOCAL and probe.reason.startswith("remote recovering") and probe.uplink_bytes > 0
        assert client.infer(red_frame()).where == Where.REMOTE  # the probe's success closed the breaker


def test_a_hedged_frame_takes_whichever_comes_first_of_the_device_and_the_late_answer(tiny_repo: Path) -> None:
    # A very slow device: past the 20 ms hedge the device model starts, but the answer at 150 ms wins.
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy="always-remote", deadline_ms=20,
        transport=SlowTransport(0.15),
    ) as client:  # fmt: skip
        very_slow_device_model(client)
        start = time.perf_counter()
        won = client.infer(red_frame())
        waited = time.perf_counter() - start
        assert client.estimates.link.bytes_per_ms is not None  # the late answer's timing was learned
        assert client.estimates.remote_late.value == 0.0  # it served the frame: late, but not a miss
    assert won.where == Where.REMOTE and won.classes[0].label == "remote", won.reason
    # (the hedge is what is left of the 20 ms once the frame is encoded: less on a busy machine)
    assert re.match(r"remote answered after the \d+ ms hedge", won.reason), won.reason
    assert waited < 1.0  # the device run was stopped, not waited for (it would take seconds)
    # The battery paid for the device's run from the hedge until the answer (~130 ms), though it served nothing.
    busy_mw = client._router._energy.compute.busy_mw
    assert 0.08 * busy_mw <= won.compute_mj <= waited * busy_mw, won.compute_mj

    # A fast device: it answers long before the late reply, which then only teaches the estimators.
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy="always-remote", deadline_ms=20, transport=SlowTransport(0.5)
    ) as client:
        lost = client.infer(red_frame())
        assert client.estimates.remote_late.value == 1.0
    assert lost.where == Where.LOCAL and lost.classes[0].label == "red"
    assert lost.reason.startswith("fallback: remote failed (DEADLINE_EXCEEDED")


async def test_the_async_client_races_the_device_against_a_late_answer_too(tiny_repo: Path) -> None:
    async with AsyncOffloadClient(
        model="tiny", models_dir=tiny_repo, policy="always-remote", deadline_ms=20,
        transport=SlowAsyncTransport(),
    ) as client:  # fmt: skip
        very_slow_device_model(client)
        start = time.perf_counter()
        won = await client.infer(red_frame())
        waited = time.perf_counter() - start
    assert won.where == Where.REMOTE and re.match(r"remote answered after the \d+ ms hedge", won.reason), won.reason
    assert waited < 1.0


def test_local_only_sends_nothing_even_for_always_remote(tiny_repo: Path) -> None:
    fake = InMemoryTransport(classify_remotely)
    with OffloadClient(model="tiny", models_dir=tiny_repo, policy="always-remote", transport=fake) as client:
        client.privacy = "local-only"
        results = [client.infer(red_frame()) for _ in range(5)]
        assert fake.requests == 0 and fake.bytes_sent == 0
        assert all(r.where == Where.LOCAL and r.reason == "privacy: local-only" for r in results)
        client.privacy = "allow"
        assert client.infer(red_frame()).where == Where.REMOTE
    with pytest.raises(ValueError, match="unknown privacy mode"):
        client.privacy = "maybe"


def test_a_seeding_probe_teaches_the_link_model_but_is_not_judged_late(tiny_repo: Path) -> None:
    # Seeding measures the link at sizes of its own choosing; a slow answer to one is no missed frame.
    with OffloadClient(
        model="tiny", models_dir=tiny_repo, policy=Adaptive(seed_samples=2), deadline_ms=100,
        transport=(link := SlowTransport(0.3)),
    ) as client:  # fmt: skip
        seed = client.infer(red_frame())
        link.settle()
        client.infer(red_frame())  # the seed's answer is taken in before this frame is decided
        est = client.estimates
        assert seed.uplink_bytes > 0 and seed.jpeg_quality == 35
        assert est.remote_ms.samples == 1 and est.remote_late.samples == 0


def test_after_an_outage_the_remote_path_is_measured_again_at_several_qualities() -> None:
    policy, est = Adaptive(seed_samples=3), estimates(local=300, remote=100)
    assert not policy.decide(PolicyInput(0, est, 1000.0, True)).seed  # measured: an ordinary decision
    est.after_outage()
    qualities = []
    for i in range(1, 4):
        d = policy.decide(PolicyInput(i, est, 1000.0, True))
        assert d.race and d.seed, d.reason  # raced: the app waits no longer than for the device
        qualities.append(d.jpeg_quality)
        est.remote_ms.update(100.0)
    assert len(set(qualities)) == 3, qualities  # three sizes: enough for RTT and throughput to come apart
    assert not policy.decide(PolicyInput(4, est, 1000.0, True)).seed


def test_a_remote_path_that_keeps_failing_out_of_play_is_measured_again_less_and_less_often() -> None:
    policy, est = Adaptive(seed_samples=3, probe_after_s=1.0, probe_max_s=4.0), estimates(local=100, remote=600)
    assert policy.decide(PolicyInput(0, est, 1000.0, True)).where == Where.LOCAL  # the device's path
    waits = []
    for outage in range(4):
        est.after_outage()
        i = 10 * (outage + 1)
        early = policy.decide(PolicyInput(i, est, 1000.0, True, since_remote_s=0.9))
        assert early.where == Where.LOCAL and not early.race and "keeps failing" in early.reason, early.reason
        waits.append(policy.reseed_wait_s)
        due = policy.decide(PolicyInput(i + 1, est, 1000.0, True, since_remote_s=policy.reseed_wait_s + 0.1))
        assert due.race and due.seed, due.reason  # then measured again as after any outage
        est.remote_ms.update(600.0)
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, up to probe_max_s
    for _ in range(3):
        est.remote_ms.update(80.0)
    assert policy.decide(PolicyInput(60, est, 1000.0, True)).where == Where.REMOTE
    for _ in range(5):
        est.remote_ms.update(2000.0)  # the outage's own failed frames price the path out of play...
    assert policy.decide(PolicyInput(61, est, 1000.0, True)).where == Where.LOCAL
    est.after_outage()  # ...but it was in use before: measured again at once
    assert policy.decide(PolicyInput(62, est, 1000.0, True, since_remote_s=0.1)).race
    assert policy.reseed_wait_s == 0.0


def test_a_link_out_of_play_before_its_outage_is_measured_again_with_thumbnails() -> None:
    def after_outage(policy: Adaptive, remote: float) -> Decision:
        est = estimates(local=100, remote=remote)
        est.server_ms.update(50.0)  # the frame's server time is known from before
        policy.decide(PolicyInput(0, est, 1000.0, True))
        est.after_outage()
        return policy.decide(PolicyInput(1, est, 1000.0, True, since_remote_s=policy.probe_max_s))

    out_of_play = after_outage(Adaptive(), remote=600)
    assert out_of_play.shadow and out_of_play.seed and out_of_play.probe_scale < 1, out_of_play.reason
    in_play = after_outage(Adaptive(), remote=80)  # the path served before: a race may serve again at once
    assert in_play.race and in_play.probe_scale == 1.0, in_play.reason
    accuracy = after_outage(Adaptive(objective="accuracy"), remote=600)  # its races are for the better answer
    assert accuracy.race and accuracy.probe_scale == 1.0, accuracy.reason


LADDER = (
    DeviceOption("device", accuracy=0.82, latency_ms=100.0),
    DeviceOption("device-accurate", accuracy=0.85, latency_ms=130.0),
)


def test_adaptive_accuracy_runs_the_most_accurate_device_variant_that_fits_the_deadline() -> None:
    est = estimates(local=100, remote=900)  # the server is out of reach: the device answers
    policy = Adaptive(objective="accuracy", accuracy={Where.LOCAL: 0.8, Where.REMOTE: 0.9})
    roomy = policy.decide(PolicyInput(1, est, 400.0, True, device_options=LADDER))
    assert roomy.where == Where.LOCAL and roomy.device_variant == "device-accurate", roomy.reason
    assert roomy.predicted_local_ms == pytest.approx(130.0)  # the benchmark's ratio until it has run
    assert policy.local_accuracy == pytest.approx(0.83)  # the measured gain over the default, added
    tight = policy.decide(PolicyInput(2, est, 120.0, True, device_options=LADDER))
    assert tight.where == Where.LOCAL and tight.device_variant is None  # only the fast one is in time
    # local-only: the device answers every frame, and still with the best variant that is in time.
    private = policy.decide(PolicyInput(3, est, 400.0, False, "privacy: local-only", device_options=LADDER))
    assert private.device_variant == "device-accurate" and private.reason.startswith("privacy: local-only")


def test_a_larger_variant_waits_for_a_known_spread() -> None:
    policy = Adaptive(objective="accuracy", accuracy={Where.LOCAL: 0.8, Where.REMOTE: 0.9})

    def variant(est: Estimates, deadline_ms: float) -> str | None:
        private = PolicyInput(1, est, deadline_ms, False, "privacy: local-only", device_options=LADDER)
        return policy.decide(private).device_variant

    assert variant(estimates(local=100, remote=None, samples=3), 400.0) is None  # three frames: a guess
    assert variant(estimates(local=100, remote=None, samples=5), 400.0) == "device-accurate"


def measured_device(mean_ms: float, sd_ms: float, extra_ms: float) -> Estimates:
    """The default variant measured at mean ± sd (a normal), the accurate one `extra_ms` slower on the same frames."""
    est = Estimates()
    # Ewma's `high` is the mean + 2 mean absolute deviations: 1.6 standard deviations.
    est.local_ms = Ewma(value=mean_ms, deviation=0.8 * sd_ms, samples=20)
    est.variant_extra["device-accurate"] = Ewma(value=extra_ms, samples=20)
    return est


@pytest.mark.parametrize(("fits", "taken"), [(0.92, True), (0.5, False)])
def test_the_accurate_variant_is_taken_when_it_fits_nine_times_in_ten_and_not_five(fits: float, taken: bool) -> None:
    """Expected words in time: 0.667 x 0.92 beats 0.45 x 1.0, and 0.92 keeps the promise; 0.667 x 0.5 does not."""
    accuracy = {Where.LOCAL: 0.45, Where.REMOTE: 0.8, "device-accurate": 0.667}
    sd, deadline = 70.0, 500.0
    mean = deadline - sd * statistics.NormalDist().inv_cdf(fits)  # the accurate variant's mean time
    est = measured_device(mean - 150.0, sd, 150.0)
    private = PolicyInput(1, est, deadline, False, "privacy: local-only", device_options=LADDER)
    d = Adaptive(objective="accuracy", accuracy=accuracy).decide(private)
    assert (d.device_variant == "device-accurate") is taken, d.reason
    if taken:  # and on frames timed as measured, the deadline holds 9 times in 10
        times = np.random.default_rng(5).normal(mean, sd, 4000)
        assert (times <= deadline).mean() >= 0.9


def test_adaptive_latency_keeps_the_fastest_device_variant() -> None:
    d = Adaptive().decide(PolicyInput(1, estimates(local=100, remote=900), 400.0, True, device_options=LADDER))
    assert d.where == Where.LOCAL and d.device_variant is None


def test_before_a_variant_has_run_its_time_is_the_default_times_their_ratio_on_an_empty_frame() -> None:
    timed = (replace(LADDER[0], blank_ms=60.0), replace(LADDER[1], blank_ms=200.0))  # this device, at load
    est = estimates(local=100, remote=900)
    d = Adaptive(objective="accuracy").decide(PolicyInput(1, est, 400.0, False, "local-only", device_options=timed))
    assert d.device_variant == "device-accurate" and d.predicted_local_ms == pytest.approx(333.3, abs=0.1)
    tight = Adaptive(objective="accuracy").decide(PolicyInput(1, est, 300.0, False, "local", device_options=timed))
    assert tight.device_variant is None  # 333 ms does not fit 300 ms, though the benchmark's 1.3x would


def test_adaptive_accuracy_weighs_the_server_at_the_jpeg_quality_it_would_get() -> None:
    est = estimates(local=100, remote=None)  # the device is measured; the remote path is being seeded
    accuracy = {Where.LOCAL: 0.8, Where.REMOTE: 0.9}
    blind = Adaptive(objective="accuracy", accuracy=accuracy).decide(PolicyInput(5, est, 400.0, True))
    assert blind.jpeg_quality == 35 and blind.prefer_remote  # the server reads more... at full quality
    table = ((90, 0.92), (70, 0.90), (35, 0.70))  # what the benchmark measured: small words blur away at q35
    told = Adaptive(objective="accuracy", accuracy=accuracy)
    d = told.decide(PolicyInput(5, est, 400.0, True, remote_jpeg_accuracy=table))
    assert d.jpeg_quality == 35 and not d.prefer_remote  # at q35 the device's answer is the better one
    assert told.remote_accuracy == pytest.approx(0.68)


def test_adaptive_accuracy_takes_each_paths_accuracy_from_the_models_measurements_unless_given() -> None:
    est = estimates(local=100, remote=900)
    table = ((90, 0.93), (70, 0.92), (35, 0.86))  # model.yaml: the server's words read at each JPEG quality
    measured = Adaptive(objective="accuracy")
    measured.decide(PolicyInput(1, est, 400.0, True, device_options=LADDER, remote_jpeg_accuracy=table))
    assert measured.accuracy == {Where.LOCAL: 0.82, Where.REMOTE: 0.93}  # no hand-set guesses left
    assert measured.local_accuracy == pytest.approx(0.85)  # device-accurate, which fits the deadline
    # Given by the caller (bench-policy measures every path on held-out frames), a variant by its name too.
    told = Adaptive(objective="accuracy", accuracy={Where.LOCAL: 0.5, Where.REMOTE: 0.7, "device-accurate": 0.66})
    told.decide(PolicyInput(1, est, 400.0, True, device_options=LADDER, remote_jpeg_accuracy=table))
    assert told.accuracy[Where.LOCAL] == 0.5 and told.local_accuracy == pytest.approx(0.66)
