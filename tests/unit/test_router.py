"""The frame router as a state machine: driven by events and a fake clock, no threads, no sockets."""

from __future__ import annotations

import numpy as np
import pytest

from offload_client.policy import (
    Adaptive,
    AlwaysLocal,
    AlwaysRemote,
    Decision,
    DeviceOption,
    Ewma,
    Policy,
    PolicyInput,
)
from offload_client.policy.breaker import BreakerState
from offload_client.privacy import Privacy
from offload_client.router import FrameRouter
from offload_client.steps import (
    Answered,
    AwaitDevice,
    AwaitRemote,
    DeviceDone,
    Failed,
    Race,
    RunLocal,
    Send,
    TimedOut,
)
from offload_client.transport import Exchange, TransportError
from offload_core.proto import offload_pb2 as pb
from offload_core.types import Box, FrameResult, Prediction, StageTimes, Where

pytestmark = pytest.mark.unit

IMAGE = np.full((48, 64, 3), 200, np.uint8)
BOX = Box(points=[(0, 0), (4, 0), (4, 2), (0, 2)])
LADDER = (
    DeviceOption("device", accuracy=0.82, latency_ms=100.0),
    DeviceOption("device-accurate", accuracy=0.85, latency_ms=130.0),
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000.0


def router(policy: Policy, clock: Clock, privacy: Privacy = Privacy.ALLOW, deadline_ms: float = 500.0) -> FrameRouter:
    r = FrameRouter("text-spotter", policy, privacy, deadline_ms, 90, clock=clock)
    r.device_ready("", LADDER)
    return r


def answer(server_ms: float = 20.0, boxes: int = 1) -> Answered:
    response = pb.InferResponse(model="text-spotter", variant="server")
    response.timings.total_ms = server_ms
    for _ in range(boxes):
        response.boxes.add().points.add()
    return Answered(Exchange(response, request_bytes=1000, response_bytes=50))


def device_done(ms: float = 100.0, boxes: int = 1, variant: str = "device") -> DeviceDone:
    return DeviceDone(Prediction(boxes=[BOX] * boxes), StageTimes(inference_ms=ms), variant)


def test_a_remote_frame_is_sent_and_its_answer_serves_it() -> None:
    clock = Clock()
    r = router(AlwaysRemote(), clock)
    send = r.begin(IMAGE)
    assert isinstance(send, Send) and send.call.request.encoded.format == "jpeg"
    assert send.wait_s == pytest.approx(0.5)  # nothing known yet: wait until the deadline
    clock.advance(120)
    result = r.next(send, answer(server_ms=20))
    assert isinstance(result, FrameResult) and result.where == Where.REMOTE
    assert result.latency_ms == pytest.approx(120) and result.timings.network_ms == pytest.approx(100, abs=1)
    assert r.estimates.remote_ms.value == pytest.approx(120) and r.breaker.state == BreakerState.CLOSED


def test_past_the_hedge_the_device_races_the_call_and_a_late_answer_still_teaches() -> None:
    clock = Clock()
    r = router(AlwaysRemote(), clock)
    send = r.begin(IMAGE)
    clock.advance(500)
    race = r.next(send, TimedOut())
    assert isinstance(race, Race)
    clock.advance(100)
    result = r.next(race, device_done(100))
    assert isinstance(result, FrameResult) and result.where == Where.LOCAL and result.error is not None
    assert "DEADLINE_EXCEEDED" in result.reason and r.estimates.remote_late.value == 1.0
    clock.advance(300)
    r.late(send.frame, answer().exchange)  # the call answered after all: 900 ms after it was sent
    r.begin(IMAGE)  # taken in before the next frame is decided
    assert r.estimates.remote_ms.samples == 2 and r.estimates.remote_ms.value is not None
    assert r.estimates.server_ms.value == pytest.approx(20)  # what the server itself took


class SeedSends(Policy):
    """Every frame sent to measure the link (`Decision.seed`), hedged, not raced."""

    def decide(self, inp: PolicyInput) -> Decision:
        return Decision(Where.REMOTE, "measuring the link", seed=True)


def test_a_seed_frame_waits_for_the_device_s_latest_start_and_one_the_device_beats_runs_on_as_a_probe() -> None:
    clock = Clock()
    r = router(SeedSends(), clock)
    r.estimates.local_ms.update(150.0)  # the device is measured, nothing is known of the link
    send = r.begin(IMAGE)
    assert isinstance(send, Send) and send.wait_s == pytest.approx(0.35)  # the device still ends by 500 ms
    clock.advance(350)
    race = r.next(send, TimedOut())
    clock.advance(150)
    result = r.next(race, device_done(150))
    assert isinstance(result, FrameResult) and result.where == Where.LOCAL and result.error is None
    assert r.breaker.failures == 0 and r.estimates.remote_late.samples == 0  # no failure, not judged
    clock.advance(100)
    r.late(send.frame, answer().exchange)  # its answer teaches the link as a probe's would
    r.begin(IMAGE)
    assert r.estimates.remote_ms.value == pytest.approx(600) and r.estimates.remote_late.samples == 0
    send = r.begin(IMAGE)  # the link is now known to be slow: a frame that measures it still waits no longer
    assert isinstance(send, Send) and send.wait_s == pytest.approx(0.35)


class EncodeOnly(Policy):
    """The device answers; the frame is also encoded at q35 to learn its size (`Decision.encode_at`)."""

    def decide(self, inp: PolicyInput) -> Decision:
        return Decision(Where.LOCAL, "the device, and what sending would carry", encode_at=35)


@pytest.mark.parametrize("privacy", [Privacy.ALLOW, Privacy.LOCAL_ONLY])
def test_a_frame_encoded_only_to_learn_its_size_sends_nothing(privacy: Privacy) -> None:
    r = router(EncodeOnly(), Clock(), privacy)
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    run = r.begin(frame)
    assert isinstance(run, RunLocal) and run.probe is None  # no call of any kind
    result = r.next(run, device_done())
    assert isinstance(result, FrameResult) and result.uplink_bytes == 0 and result.radio_mj == 0
    learned = r.estimates.jpeg.predict(35)
    if privacy == Privacy.ALLOW:
        assert learned is not None and learned > 1000  # noise: a JPEG of a few KB
    else:
        assert learned is None  # the frame may not leave: it is not even encoded


def test_a_call_that_fails_falls_back_to_the_device_and_two_open_the_breaker_until_a_patient_probe() -> None:
    clock = Clock()
    r = router(AlwaysRemote(), clock)
    for _ in range(2):
        send = r.begin(IMAGE)
        fallback = r.next(send, Failed(TransportError("UNAVAILABLE", "connection refused")))
        assert isinstance(fallback, RunLocal) and fallback.probe is None
        result = r.next(fallback, device_done())
        assert isinstance(result, FrameResult) and result.reason.startswith("fallback: remote failed (UNAVAILABLE")
    blocked = r.begin(IMAGE)
    assert isinstance(blocked, RunLocal) and blocked.probe is None and "circuit open" in blocked.frame.decision.reason
    r.next(blocked, device_done())
    clock.advance(1000)  # past the backoff: half-open
    probing = r.begin(IMAGE)
    assert isinstance(probing, RunLocal) and probing.probe is not None and probing.probe.patient
    assert probing.probe.request.encoded.data and probing.frame.thumbnail
    r.next(probing, device_done())
    waiting = r.begin(IMAGE)  # one probe at a time
    assert isinstance(waiting, RunLocal) and waiting.probe is None
    r.next(waiting, device_done())
    r.late(probing.frame, answer().exchange)
    assert isinstance(r.begin(IMAGE), Send) and r.breaker.state == BreakerState.CLOSED


def test_in_local_only_nothing_is_ever_sent_whatever_the_policy_says() -> None:
    r = router(AlwaysRemote(), Clock(), Privacy.LOCAL_ONLY)
    for _ in range(3):
        step = r.begin(IMAGE)
        assert isinstance(step, RunLocal) and step.probe is None and step.frame.request is None
        result = r.next(step, device_done())
        assert isinstance(result, FrameResult) and result.uplink_bytes == 0 and result.privacy == "local-only"


def test_with_no_device_model_the_call_is_the_only_way_and_its_failure_is_said() -> None:
    clock = Clock()
    r = FrameRouter("text-spotter", Adaptive(), Privacy.ALLOW, 500.0, 90, clock=clock)
    r.device_ready("no device model yet: pulling text-spotter")
    send = r.begin(IMAGE)
    assert isinstance(send, Send) and send.wait_s == send.call.timeout_s  # no hedge: nothing to hedge with
    result = r.next(send, TimedOut())
    assert isinstance(result, FrameResult) and result.where == Where.NONE
    assert result.error is not None and "no device model yet" in result.reason and "DEADLINE_EXCEEDED" in result.reason
    r.use_privacy(Privacy.LOCAL_ONLY)
    nothing = r.begin(IMAGE)
    assert isinstance(nothing, FrameResult) and nothing.where == Where.NONE and nothing.uplink_bytes == 0


class RemoteWhenAccurate(Policy):
    """Sends every frame, raced from the start, and prefers the server's answer until the deadline."""

    name = "prefer-remote"

    def decide(self, inp: PolicyInput) -> Decision:
        return Decision(Where.REMOTE, "test: accuracy", race=True, prefer_remote=True)


def test_a_raced_frame_waits_for_the_more_accurate_answer_and_learns_the_devices_time_all_the_same() -> None:
    clock = Clock()
    r = router(RemoteWhenAccurate(), clock)
    send = r.begin(IMAGE)
    assert isinstance(send, Send) and send.wait_s == 0.0  # raced from the start
    race = r.next(send, TimedOut())
    assert isinstance(race, Race)
    clock.advance(150)
    waiting = r.next(race, device_done(150))
    assert isinstance(waiting, AwaitRemote) and waiting.wait_s == pytest.approx(0.49 - 0.15)
    clock.advance(100)
    result = r.next(waiting, answer())
    assert isinstance(result, FrameResult) and result.where == Where.REMOTE and result.raced
    assert result.reason.endswith("the server answered first")
    assert r.estimates.local_ms.value == pytest.approx(150) and r.estimates.race_won.value == 1.0


def test_a_call_that_fails_during_the_race_leaves_the_device_to_finish() -> None:
    r = router(AlwaysRemote(), Clock())
    race = r.next(r.begin(IMAGE), TimedOut())
    assert isinstance(race, Race)
    rest = r.next(race, Failed(TransportError("UNAVAILABLE", "reset")))
    assert isinstance(rest, AwaitDevice)
    result = r.next(rest, device_done())
    assert isinstance(result, FrameResult) and result.where == Where.LOCAL and "UNAVAILABLE" in (result.error or "")


def test_an_event_that_cannot_end_an_action_is_refused() -> None:
    r = router(AlwaysLocal(), Clock())
    step = r.begin(IMAGE)
    assert isinstance(step, RunLocal)
    with pytest.raises(ValueError, match="TimedOut cannot end RunLocal"):
        r.next(step, TimedOut())


class Ladder(Policy):
    """Runs the device variant it is told to."""

    name = "ladder"

    def __init__(self) -> None:
        self.variant: str | None = None

    def decide(self, inp: PolicyInput) -> Decision:
        return Decision(Where.LOCAL, "test", device_variant=self.variant)


def test_a_device_variants_time_is_learned_as_what_it_takes_beyond_the_default() -> None:
    policy = Ladder()
    r = router(policy, Clock(), Privacy.LOCAL_ONLY)
    for _ in range(5):
        r.next(r.begin(IMAGE), device_done(100.0, boxes=3))  # the default variant
    policy.variant = "device-accurate"
    step = r.begin(IMAGE)
    assert isinstance(step, RunLocal) and step.variant == "device-accurate"
    result = r.next(step, device_done(180.0, boxes=3, variant="device-accurate"))  # slower than the benchmark's 1.3x
    assert isinstance(result, FrameResult) and result.variant == "device-accurate"
    est = r.estimates
    assert est.local_ms.value == pytest.approx(100.0) and est.local_ms.samples == 5  # untouched
    assert est.local_variant("device-accurate", 1.3)[0] == pytest.approx(180.0)  # 80 ms beyond the default
    d = Adaptive(objective="accuracy").decide(PolicyInput(1, est, 170.0, False, "local-only", device_options=LADDER))
    assert d.device_variant is None  # measured at 180 ms, it no longer fits a 170 ms deadline
    est.local_ms = Ewma(value=300.0, samples=5)  # busier frames: the extra 80 ms is added, not multiplied
    assert est.local_variant("device-accurate", 1.3)[0] == pytest.approx(380.0)
