"""Learning from outcomes: every answer, failure and late reply updates what the client knows.

The router reports what happened to each frame; this module turns it into the
estimates the policy reads, the circuit breaker's state, the hedge time, and
the refusal a server gave. Late outcomes arrive from transport threads and are
applied at the start of the next frame, so the estimates change on one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from offload_client.pending import Pending
from offload_client.policy import CircuitBreaker, Estimates
from offload_client.policy.breaker import BreakerState
from offload_client.policy.estimators import Ewma
from offload_client.security import is_refusal
from offload_client.transport import Exchange, TransportError
from offload_core.types import Timings
from offload_core.wire import timings_from_server

# A remote call may run this many deadlines before gRPC gives up: a late answer still teaches the
# estimators, but a stale frame should not occupy the server for long after an outage.
LATE_ANSWER_FACTOR = 2.0
# A server that refused this client (bad token or certificate) is asked again only after this long:
# retrying at once would only hammer it, and credentials change on the scale of minutes.
REFUSED_RETRY_S = 60.0


class Learner:
    """What the client knows of both paths, and the bookkeeping that keeps it current."""

    def __init__(self, deadline_ms: float, breaker: CircuitBreaker, clock: Callable[[], float]) -> None:
        self.deadline_ms = deadline_ms
        self.breaker = breaker
        self.clock = clock
        self.estimates = Estimates()
        self.probes_in_flight = 0
        self.last_remote_answer = clock()
        self.refusal = ""  # why the server refused this client ("" while it has not)
        self.refused_at = 0.0
        self._late: list[tuple[Pending, Exchange | TransportError, float]] = []
        self._late_lock = threading.Lock()

    def elapsed_ms(self, since: float) -> float:
        return (self.clock() - since) * 1000.0

    @property
    def refused(self) -> str:
        """The refusal still in force ("" when the server may be asked again)."""
        if self.refusal and self.clock() - self.refused_at < REFUSED_RETRY_S:
            return self.refusal
        return ""

    def hedge_ms(self, measuring: bool = False) -> float:
        """How long to wait for the remote answer before starting the device model.

        Late enough that the device still finishes by the deadline, never before the remote
        path's own pessimistic time: cutting off answers that are merely typical would turn
        a slow device into a flood of fallbacks. With nothing known of the remote path, or for
        a frame sent to measure it (`measuring`: the frame must not wait on what is being
        measured), the device's latest start (the deadline itself while the device is unmeasured).
        """
        est = self.estimates
        local_start = self.deadline_ms - (est.local_ms.high or 0.0)
        if est.remote_ms.high is None or measuring:  # nothing known (a fresh start, back from an outage)
            return max(0.0, local_start)
        return min(self.deadline_ms, max(local_start, est.remote_ms.high))

    def call_timeout_s(self) -> float:
        return max(1.0, LATE_ANSWER_FACTOR * self.deadline_ms / 1000.0)

    # -- outcomes of the frame itself -----------------------------------------------------

    def remote_served(self, pending: Pending, timings: Timings, boxes: int) -> None:
        """The remote answer served the frame."""
        self.refusal = ""
        if self.breaker.state != BreakerState.CLOSED:
            self.estimates.after_outage()
        self.breaker.success()
        self._learn_remote(pending, timings, timings.total_ms, boxes)
        if not pending.decision.seed:  # (a seed is never judged: see `Decision.seed`)
            self.estimates.remote_late.update(0.0)
        self._judge_in_time(pending, timings.total_ms)
        self.last_remote_answer = self.clock()

    def device_ran(self, ms: float, boxes: int, extra_variant: str | None = None) -> None:
        """A full device run: its time, for how many boxes (also of a run whose answer went unused).

        `extra_variant`: a variant other than the default; it teaches how much longer than the
        default that variant takes on the same content.
        """
        est = self.estimates
        if extra_variant:
            base = est.local_for(boxes)
            if base:
                est.variant_extra.setdefault(extra_variant, Ewma()).update(ms - base)
            return
        est.local_ms.update(ms)
        est.local_fit.update(boxes, ms)

    def encoded(self, quality: int, size: int, encode_ms: float) -> None:
        """A frame encoded at `quality` and not sent (`Decision.encode_at`): its size and the encoding's time."""
        self.estimates.jpeg.update(quality, size)
        self.estimates.encode_ms.update(encode_ms)

    def content(self, boxes: int) -> None:
        """How much the last answered frame held (the next one likely holds as much)."""
        self.estimates.content = boxes

    def remote_failed(self, pending: Pending, failure: TransportError, still_running: bool = False) -> None:
        """The call failed or lost the race: count it against the remote path.

        `still_running`: it lost the race but may yet answer. A slow answer is no broken link,
        so the breaker hears of it only if it ends in an error (see `late`). A refusal at arrival is
        no broken link either: the server answered at once, and its load keeps busy frames away (counted
        as failures, refusals held a fleet's breakers open after a server restart: 4 phones of 16 came
        back in 17 s, the rest waited on probes the busy server refused).
        """
        if failure.server_wait_ms is not None:  # refused at arrival: the server said how busy it is
            self.breaker.success()
            self.heard_load(failure.server_wait_ms)
        elif not still_running:
            self.breaker.failure()
        self._note_refusal(failure)
        est = self.estimates
        spent = self.elapsed_ms(pending.started)
        est.remote_ms.update(max(spent, self.deadline_ms))
        est.remote_late.update(1.0)
        self._judge_in_time(pending, None)
        if pending.request is not None and est.server_ms.value is not None:
            # The network took at least this long: a censored sample, but it drags an optimistic
            # link model down at once instead of letting it send frame after frame into a slow link.
            at_least = spent - pending.encode_ms - est.server_ms.value
            if at_least > 0 and est.link.bytes_per_ms is not None:
                size = pending.request.ByteSize()
                if at_least > est.link.predict_ms(size):
                    est.link.update(size, at_least)

    def heard_load(self, predicted_wait_ms: float) -> None:
        """The server's load signal, from an answer or a refusal: the wait it predicts for its next request."""
        usual = self.estimates.server_queue_ms.value or 0.0
        self.estimates.server_busy_ms = max(0.0, predicted_wait_ms - usual)

    def race_judged(self, pending: Pending, won: bool) -> None:
        """Whether a race's remote answer served its frame; seeds are not judged."""
        if pending.decision.race and not pending.decision.seed:
            self.estimates.race_won.update(1.0 if won else 0.0)

    def remote_time_left_s(self, pending: Pending) -> float:
        """How long a frame that has the device's result may still wait for the more accurate remote one."""
        if not pending.decision.prefer_remote:
            return 0.0
        # A small margin: the answer must still be handed over before the deadline passes.
        return max(0.0, (self.deadline_ms * 0.98 - self.elapsed_ms(pending.started)) / 1000.0)

    # -- outcomes after the frame ---------------------------------------------------------

    def late(self, pending: Pending, outcome: Exchange | TransportError) -> None:
        """A followed call finished after its frame was answered (from any thread)."""
        with self._late_lock:
            self._late.append((pending, outcome, self.elapsed_ms(pending.started)))

    def apply_late(self) -> None:
        """Learn from the late outcomes that arrived since the last frame."""
        with self._late_lock:
            late, self._late = self._late, []
        for pending, outcome, total in late:
            self.probes_in_flight -= pending.shadow
            if isinstance(outcome, Exchange):
                self.last_remote_answer = self.clock()
                if outcome.response.HasField("load"):
                    self.heard_load(outcome.response.load.predicted_wait_ms)
            else:
                if outcome.server_wait_ms is not None:
                    self.heard_load(outcome.server_wait_ms)
                # No answer at all, from any call: that is what the breaker counts, so that the first answer
                # after an outage reads as the link coming back, not as a sample of it (see `_probe_answered`).
                self._note_refusal(outcome)
                self.breaker.failure()
            if not pending.shadow:  # a call that lost its race: already counted late, its timing still teaches
                if isinstance(outcome, Exchange):
                    timings = self.remote_timings(pending, outcome, total)
                    self._learn_remote(pending, timings, total, len(outcome.response.boxes))
            elif isinstance(outcome, Exchange):
                self._probe_answered(pending, outcome, total)
            else:
                self._judge_in_time(pending, None)
                self.estimates.remote_late.update(1.0)

    def _probe_answered(self, pending: Pending, outcome: Exchange, total: float) -> None:
        normal_call_ms = self.call_timeout_s() * 1000.0
        est = self.estimates
        if self.breaker.state != BreakerState.CLOSED or (total > normal_call_ms and self.breaker.failures):
            # A probe that waited out an outage (calls failed meanwhile): the link is back, but how long
            # it took says nothing of the link now. Start afresh; the next frames measure it.
            est.after_outage()
            self.breaker.success()
            return
        if total > normal_call_ms:
            # Slow, not dark (no call failed meanwhile): a probe this slow may have sat out a stall, so
            # it is no sample of the link now. It counts as late, and as at least a normal call.
            self._judge_in_time(pending, total)  # (a thumbnail too: its frame would not have been faster)
            if not pending.decision.seed:
                est.remote_late.update(1.0)
            est.remote_ms.update(normal_call_ms)
            return
        # Late means it would not have served the frame: a sent frame races the device model from
        # the hedge on, so an answer counts until the device would have finished.
        in_time_ms = self.hedge_ms() + (est.local_ms.value or 0.0)
        timings = self.remote_timings(pending, outcome, total)
        if pending.thumbnail:
            total = self._learn_thumbnail(pending, timings)  # judged as the frame itself would have been
        else:
            self._learn_remote(pending, timings, total, len(outcome.response.boxes))
        self._judge_in_time(pending, total)
        if not pending.decision.seed:
            est.remote_late.update(0.0 if total <= in_time_ms else 1.0)

    # -- the pieces -----------------------------------------------------------------------

    @staticmethod
    def remote_timings(pending: Pending, exchange: Exchange, total: float) -> Timings:
        """A round trip of `total` ms split into encoding, network and the server's own stages."""
        server = exchange.response.timings
        timings = timings_from_server(server)
        timings.encode_ms = pending.encode_ms
        timings.network_ms = max(0.0, total - pending.encode_ms - server.total_ms)
        timings.total_ms = total
        return timings

    def _note_refusal(self, failure: TransportError) -> None:
        if is_refusal(failure.code, failure.message):
            self.refusal, self.refused_at = f"{failure.code}: {failure.message}", self.clock()

    def _judge_in_time(self, pending: Pending, round_trip_ms: float | None) -> None:
        """Whether a remote round trip (None: no answer) came back within the deadline; seeds are not judged."""
        if not pending.decision.seed:
            in_time = round_trip_ms is not None and round_trip_ms <= self.deadline_ms
            self.estimates.remote_in_time.update(1.0 if in_time else 0.0)

    def _learn_remote(self, pending: Pending, timings: Timings, latency_ms: float, boxes: int) -> None:
        est = self.estimates
        assert pending.request is not None
        est.remote_ms.update(latency_ms)
        est.encode_ms.update(timings.encode_ms)
        server_ms = timings.total_ms - timings.network_ms - timings.encode_ms
        est.server_ms.update(server_ms)
        est.server_queue_ms.update(timings.server_queue_ms)
        est.server_fit.update(boxes, server_ms)
        est.link.update(pending.request.ByteSize(), timings.network_ms)
        if pending.plan is None:  # JPEG sizes are a whole frame's; regions (their own qualities) teach the link only
            est.jpeg.update(pending.quality, pending.image_bytes)

    def _learn_thumbnail(self, pending: Pending, timings: Timings) -> float:
        """Teach the link model a thumbnail's network time; return the round trip the frame would have taken.

        The frame would have taken the same link, plus its extra bytes at the link's throughput, and its
        own encoding and server time (as last measured). Only the link is learned: the thumbnail's size,
        encoding and server time are not the frame's.
        """
        est = self.estimates
        assert pending.request is not None
        est.link.update(pending.request.ByteSize(), timings.network_ms)
        size, server = est.jpeg.predict(pending.quality), est.server()
        if size is None or server is None or est.link.bytes_per_ms is None:  # nothing known of full frames
            return timings.total_ms
        extra_ms = max(0.0, size - len(pending.request.encoded.data)) / est.link.bytes_per_ms
        frame_ms = (est.encode_ms.value or 0.0) + timings.network_ms + extra_ms + server[0]
        est.remote_ms.update(frame_ms)
        return frame_ms
