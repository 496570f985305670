"""The load signal and admission rules: the client prices a busy server in; no client takes the whole queue."""

from __future__ import annotations

import time

import pytest

from offload_client.learning import Learner
from offload_client.policy import Adaptive, CircuitBreaker, Estimates, PolicyInput
from offload_core.types import Where

pytestmark = pytest.mark.unit


def measured() -> Estimates:
    """A device at 300 ms; a server at 100 ms behind a link that adds ~60 ms for a 40 KB frame."""
    est = Estimates()
    for _ in range(5):
        est.local_ms.update(300.0)
        est.remote_ms.update(170.0)
        est.server_ms.update(100.0)
        est.server_queue_ms.update(5.0)  # what its answers usually waited in its queue
        est.encode_ms.update(5.0)
    est.jpeg.update(90, 40_000)
    for size, ms in [(20_000, 40.0), (40_000, 60.0), (30_000, 50.0), (10_000, 30.0)]:
        est.link.update(size, ms)
    return est


def test_a_busy_server_moves_the_next_frame_to_the_device_before_any_answer_is_late() -> None:
    learner = Learner(500.0, CircuitBreaker(), time.monotonic)
    learner.estimates = measured()
    policy = Adaptive(hysteresis=0.0)

    def where() -> Where:
        return policy.decide(PolicyInput(10, learner.estimates, 500.0, True, since_remote_s=0.1)).where

    assert where() == Where.REMOTE
    learner.heard_load(predicted_wait_ms=400.0)  # an answer said: the next request waits ~400 ms
    assert learner.estimates.server_busy_ms == pytest.approx(395.0)  # beyond the usual 5 ms
    assert learner.estimates.server() == pytest.approx((495.0, 495.0), abs=1.0)
    assert where() == Where.LOCAL
    learner.heard_load(predicted_wait_ms=0.0)  # the queue drained
    assert learner.estimates.server_busy_ms == 0.0 and where() == Where.REMOTE


def test_an_outage_forgets_the_load_a_restarted_server_no_longer_has() -> None:
    est = measured()
    est.server_busy_ms = 800.0
    est.after_outage()
    assert est.server_busy_ms == 0.0


def test_one_client_cannot_take_the_whole_queue() -> None:
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    admission = Admission(["m"], max_queue=8, max_per_client=2)
    held = [admission.admit("m", None, client="streamer") for _ in range(2)]
    with pytest.raises(ServiceError) as refused:
        admission.admit("m", None, client="streamer")
    assert refused.value.code.name == "RESOURCE_EXHAUSTED" and "share per client now: 2" in refused.value.message
    others = [admission.admit("m", None, client=f"phone-{i}") for i in range(6)]  # the rest is theirs
    assert admission.load("m").queue_length == 8
    admission.release(held[0], service_ms=50.0)
    # One place of seven, six phones holding one each: a second would be more than an equal share.
    with pytest.raises(ServiceError, match="share per client now: 1"):
        admission.admit("m", None, client="streamer")
    for ticket in others:
        admission.release(ticket, service_ms=50.0)
    assert set(admission.held) == {held[1]}  # only the streamer still holds places
    assert admission.admit("m", None, client="streamer").client == "streamer"  # alone again: up to its cap


def test_a_streamer_gets_no_more_than_an_equal_share_of_a_short_queue() -> None:
    """With deadline-aware admission only a place or two fit ahead of a deadline: a cap of eight never binds,
    and a phone asking thirty times a second would take every place that comes free."""
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    admission = Admission(["m"], max_queue=32, max_per_client=8)
    streamer = admission.admit("m", None, client="streamer")
    phone = admission.admit("m", None, client="phone")
    with pytest.raises(ServiceError, match="share per client now: 1"):
        admission.admit("m", None, client="streamer")
    assert admission.admit("m", None, client="another-phone").client == "another-phone"
    admission.release(phone, service_ms=50.0)
    admission.release(streamer, service_ms=50.0)


def test_a_request_with_nobody_ahead_is_admitted_whatever_the_estimate() -> None:
    """Refusing it could not help it, and the estimate, corrected only by answers, would refuse forever."""
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    admission = Admission(["m"], max_queue=8)
    admission.release(admission.admit("m", None), service_ms=3000.0)  # a slow first request after a restart
    alone = admission.admit("m", budget_ms=1600.0)  # admitted: nobody ahead
    with pytest.raises(ServiceError):  # one behind it would wait ~3 s more: refused at arrival
        admission.admit("m", budget_ms=1600.0)
    admission.release(alone, service_ms=200.0)
    assert admission.load("m").service_ms < 3000.0  # the answer corrected the estimate


def test_a_frame_with_many_words_is_predicted_slower_than_an_empty_one_on_both_paths() -> None:
    """From what the client knows before deciding: the last answered frame's box count (`content`), and the
    time each path took against the boxes of the frames it answered (a text spotter reads word by word)."""
    est = measured()
    for boxes in [*range(13), *range(12, -1, -1)]:  # content that persists from one frame to the next
        est.local_fit.update(boxes, 100.0 + 40.0 * boxes)
        est.server_fit.update(boxes, 30.0 + 8.0 * boxes)
    est.content = 0
    empty_device, empty_server = est.local()[0], est.server()
    est.content = 12
    wordy_device, wordy_server = est.local()[0], est.server()
    assert empty_server is not None and wordy_server is not None
    assert wordy_device > empty_device + 300 and wordy_server[0] > empty_server[0] + 60


def test_a_deadline_refusal_is_replayed_against_the_queue_as_it_drained() -> None:
    """Refused behind a request predicted slow that ended fast: the replay counts it as one that would have
    fit. Refused behind one that really was slow: not."""
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    now = [0.0]
    admission = Admission(["m"], max_queue=8, clock=lambda: now[0])
    admission.release(admission.admit("m", None), service_ms=3000.0)  # predicted: 3 s a request
    ahead = admission.admit("m", budget_ms=60_000.0)
    with pytest.raises(ServiceError):
        admission.admit("m", budget_ms=5000.0)  # ~6 s predicted, 5 s left: refused
    assert admission.would_fit["m"] == 0  # the request ahead of it has not left yet
    now[0] = 0.01
    admission.release(ahead, service_ms=10.0)  # it ended at once: the refused one would have fit
    assert admission.would_fit["m"] == 1

    admission.service_ms["m"] = admission.gap_ms["m"] = 3000.0  # predicted slow again
    slow = admission.admit("m", budget_ms=60_000.0)
    with pytest.raises(ServiceError):
        admission.admit("m", budget_ms=1.0)  # 1 ms left: nothing could have served it
    now[0] = 3.01
    admission.release(slow, service_ms=3000.0)
    assert admission.would_fit["m"] == 1 and not admission.replayed["m"]

    # Refused, and a later request took the place that came free: the server was busy, the refusal cost nothing.
    admission.service_ms["m"] = admission.gap_ms["m"] = 3000.0
    ahead = admission.admit("m", budget_ms=60_000.0)
    with pytest.raises(ServiceError):
        admission.admit("m", budget_ms=5000.0)
    later = admission.admit("m", budget_ms=60_000.0)
    now[0] = 3.02
    admission.release(ahead, service_ms=10.0)
    assert admission.would_fit["m"] == 1 and not admission.replayed["m"]
    admission.release(later, service_ms=10.0)


def test_the_request_in_service_counts_only_for_the_time_it_has_left() -> None:
    """Behind a request that has run most of its time, a frame fits that would not fit behind a fresh one."""
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    now = [0.0]
    admission = Admission(["m"], max_queue=8, clock=lambda: now[0])
    admission.release(admission.admit("m", None), service_ms=1000.0)  # a request takes ~1 s
    running = admission.admit("m", budget_ms=60_000.0)  # starts at once, at t = 0
    with pytest.raises(ServiceError):  # 1 s ahead + 1 s its own: past 1.5 s
        admission.admit("m", budget_ms=1500.0)
    now[0] = 0.8  # 200 ms left of the one ahead
    assert admission.load("m").predicted_wait_ms == pytest.approx(200.0)
    behind = admission.admit("m", budget_ms=1500.0)
    now[0] = 1.9  # the one in service is overdue: it counts as gone, the one behind it in whole
    assert admission.load("m").predicted_wait_ms == pytest.approx(1000.0)
    admission.release(running, service_ms=1000.0)
    admission.release(behind, service_ms=1000.0)


def test_the_wait_follows_the_pace_requests_leave_at_not_the_time_each_takes() -> None:
    """Two requests in service at once, each taking 1 s: one leaves every 0.5 s. A frame with 2 s left fits
    behind two (it ends 1.5 s from now); counting each ahead as a whole second, it did not."""
    from offload_server.admission import Admission

    now = [0.0]
    admission = Admission(["m"], max_queue=8, clock=lambda: now[0])
    in_service = [admission.admit("m", None), admission.admit("m", None)]
    for _ in range(30):  # steady: one leaves each half second after its second, one comes
        now[0] += 0.5
        admission.release(in_service.pop(0), service_ms=1000.0)
        in_service.append(admission.admit("m", None))
    assert admission.gap_ms["m"] == pytest.approx(500.0, rel=0.01)
    load = admission.load("m")
    assert load.queue_length == 2 and load.predicted_wait_ms == pytest.approx(500.0, rel=0.02)
    assert admission.admit("m", budget_ms=2000.0).model == "m"


def test_a_server_whose_predictions_miss_keeps_a_margin_for_them() -> None:
    """The same queue and the same mean prediction: a server whose requests ended ±300 ms off what it
    predicted refuses a frame that would fit only if the prediction were exact; a steady one admits it."""
    from offload_server.admission import Admission
    from offload_server.errors import ServiceError

    def trained(misses_ms: float) -> Admission:
        now = [0.0]
        admission = Admission(["m"], max_queue=8, clock=lambda: now[0])
        admission.release(admission.admit("m", None), service_ms=1000.0)
        for k in range(20):  # one at a time, each predicted at 1 s, ending 1 s ± misses_ms later
            ticket = admission.admit("m", None)
            now[0] += (1000.0 + (misses_ms if k % 2 else -misses_ms)) / 1000.0
            admission.release(ticket, service_ms=1000.0)
        admission.service_ms["m"] = admission.gap_ms["m"] = 1000.0  # the same mean for both
        admission.admit("m", None)  # one ahead, just started: ~2 s predicted for the next
        return admission

    assert trained(300.0).deviation_ms["m"] == pytest.approx(300.0, rel=0.05)
    assert trained(0.0).admit("m", budget_ms=2200.0).model == "m"
    with pytest.raises(ServiceError, match="up to ~2600 ms"):
        trained(300.0).admit("m", budget_ms=2200.0)


def test_a_refusal_at_arrival_keeps_the_breaker_closed_and_an_outage_opens_it() -> None:
    """A busy server that refuses at once is reachable: its load keeps frames away, not the breaker (counted as
    failures, refusals held a fleet's breakers open after a restart). A dead link still opens it."""
    from offload_client.pending import Pending
    from offload_client.policy import Decision
    from offload_client.policy.breaker import BreakerState
    from offload_client.transport import TransportError

    learner = Learner(500.0, CircuitBreaker(failures_to_open=2), time.monotonic)
    learner.estimates = measured()
    frame = Pending(1, Decision(Where.REMOTE, "test"), time.monotonic())
    for _ in range(3):
        learner.remote_failed(frame, TransportError("RESOURCE_EXHAUSTED", "busy", 400.0, server_wait_ms=900.0))
    assert learner.breaker.state == BreakerState.CLOSED and learner.estimates.server_busy_ms > 800.0
    for _ in range(2):
        learner.remote_failed(frame, TransportError("UNAVAILABLE", "connection refused"))
    assert learner.breaker.state == BreakerState.OPEN
