"""The frame router: the I/O-free core that the sync and async clients share.

It asks the policy where a frame goes, builds the request, turns replies and
local runs into `FrameResult`s, and feeds every outcome back to the estimators
and the circuit breaker. The clients only do the waiting.

Hedging: a remote frame waits at most until `hedge_s`, the point where the
device model must start to finish by the deadline. Then the local model runs
and races the remote call: if the answer arrives before the device finishes,
the frame takes it (`succeeded(raced=True)`), else the local result (`failed`);
an answer after that only updates the estimates (`late`, at the next frame).

Shadow probes: a policy may ask for a frame to be answered locally while a copy
goes to the server in the background, to measure the remote path without
making the app wait for it. Privacy and the breaker gate them like any send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from offload_client._proto import offload_pb2 as pb
from offload_client.device_speed import DeviceSpeed
from offload_client.engine.image import encode_jpeg, shrink
from offload_client.policy import CircuitBreaker, Decision, DeviceOption, Estimates, Policy, PolicyInput
from offload_client.policy.base import THUMBNAIL_SCALE
from offload_client.policy.breaker import BreakerState
from offload_client.policy.estimators import Ewma
from offload_client.privacy import Privacy
from offload_client.redaction import Redaction
from offload_client.security import is_refusal
from offload_client.transport import Exchange, TransportError
from offload_client.transport import late as no_answer_in_time
from offload_client.types import FrameResult, Prediction, StageTimes, Timings, Where
from offload_client.wire import prediction_from_pb, timings_from_server

# A remote call may run this many deadlines before gRPC gives up: a late answer still teaches the
# estimators, but a stale frame should not occupy the server for long after an outage.
LATE_ANSWER_FACTOR = 2.0
# How long a background probe may wait for a link to come back; one at a time, so it is cheap.
SHADOW_PATIENCE_S = 10.0
# A server that refused this client (bad token or certificate) is asked again only after this long:
# retrying at once would only hammer it, and credentials change on the scale of minutes.
REFUSED_RETRY_S = 60.0


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def jpeg_request(
    model: str, frame_id: int, frame: np.ndarray, quality: int, deadline_ms: float
) -> tuple[pb.InferRequest, float]:
    """`frame` as a JPEG inference request for `model`, and how long the encoding took (ms)."""
    start = time.perf_counter()
    data = encode_jpeg(frame, quality)
    encode_ms = elapsed_ms(start)
    encoded = pb.EncodedImage(data=data, format="jpeg")
    return pb.InferRequest(model=model, frame_id=frame_id, encoded=encoded, deadline_ms=int(deadline_ms)), encode_ms


@dataclass
class Pending:
    """A frame between decision and result; `request` is set when it is to be sent."""

    frame_id: int
    decision: Decision
    started: float
    request: pb.InferRequest | None = None
    quality: int = 0
    encode_ms: float = 0.0
    # When to stop waiting for the remote answer and run locally (seconds after `started`).
    hedge_s: float = 0.0
    # The gRPC deadline of the call itself: longer, so late answers still arrive.
    timeout_s: float = 0.0
    # Sent only to measure the remote path; the frame is answered locally at once.
    shadow: bool = False
    # Waits for a reconnecting channel (up to SHADOW_PATIENCE_S) instead of failing at once.
    patient: bool = False
    # What privacy `redact` did to the frame before it could be sent (None: not redacted).
    redaction: Redaction | None = None

    @property
    def thumbnail(self) -> bool:
        """A shadow sent scaled down (`Decision.probe_scale`): it measures the link only."""
        return self.request is not None and self.decision.shadow and self.decision.probe_scale < 1.0


class FrameRouter:
    def __init__(
        self,
        model: str,
        policy: Policy,
        privacy: Privacy,
        deadline_ms: float,
        jpeg_quality: int,
        breaker: CircuitBreaker | None = None,
        device: DeviceSpeed | None = None,
    ) -> None:
        self.model = model
        # The emulated device's speed: its work before sending (redaction, JPEG) costs it that much more.
        self.device = device or DeviceSpeed()
        self.policy = policy
        self.privacy = privacy
        self.deadline_ms = deadline_ms
        self.jpeg_quality = jpeg_quality
        self.breaker = breaker or CircuitBreaker()
        self.estimates = Estimates()
        self.frames = 0
        # Outcomes of calls that finished after their frame was answered locally; filled from gRPC threads.
        self._late: list[tuple[Pending, Exchange | TransportError, float]] = []
        self._late_lock = threading.Lock()
        self.shadows_in_flight = 0
        self.last_remote_answer = time.monotonic()
        # Why the device model cannot answer ("" when it can): then every frame that may leave goes to
        # the server and waits for it, and one that may not gets a result with no answer.
        self.device_missing = ""
        # The device variants a policy may choose from, fastest first; the first is the default, whose
        # time the estimators model (the others' as a ratio to it).
        self.device_options: tuple[DeviceOption, ...] = ()
        # The server's measured word accuracy by JPEG quality (from model.yaml), for the accuracy objective.
        self.remote_jpeg_accuracy: tuple[tuple[int, float], ...] = ()
        # Said once, in the next result's reason (e.g. a device provider this onnxruntime lacks).
        self.notes: list[str] = []
        # Privacy `redact`: paints over faces and verifies the frame before it is encoded (None: no
        # detector, see `redact_missing`, and then nothing leaves: the mode fails closed).
        self.redact: Callable[[np.ndarray, int], Redaction] | None = None
        self.redact_missing = "the face detector is not loaded"
        # Why the server refused this client, and when ("" while it has not): see REFUSED_RETRY_S.
        self.refusal = ""
        self.refused_at = 0.0

    # -- the steps of one frame -------------------------------------------------------------

    def begin(self, frame: np.ndarray) -> Pending:
        """Decide where `frame` runs; when remote, encode it and set the hedge time."""
        self._apply_late()
        started = time.perf_counter()
        frame_id, decision = self.decide()
        pending = Pending(frame_id, decision, started)
        shadow = decision.shadow and decision.where == Where.LOCAL and self._remote_blocked() == ""
        if decision.where == Where.REMOTE or shadow:
            pending.quality = decision.jpeg_quality or self.jpeg_quality
            scale = decision.probe_scale if shadow else 1.0
            try:
                pending.request = self.request(pending, frame, scale)
            except PermissionError as exc:  # redaction failed or a face remained: the frame stays on the device
                pending.decision = replace(decision, where=Where.LOCAL, shadow=False, race=False, reason=str(exc))
                pending.quality = 0
                return pending
            hedge_s = max(0.001, self._hedge_ms() / 1000.0 - elapsed_ms(started) / 1000.0)
            pending.hedge_s = 0.0 if decision.race else hedge_s
            pending.timeout_s = max(1.0, LATE_ANSWER_FACTOR * self.deadline_ms / 1000.0)
            if self.device_missing:  # nothing to hedge with: the server's answer is the only one
                pending.hedge_s = pending.timeout_s
            # The breaker's probe of a link that failed is patient: it waits out the outage and answers as
            # soon as the link is back. A policy's probe of a working link times out as a frame would.
            pending.patient = shadow and self.breaker.state == BreakerState.HALF_OPEN
            if pending.patient:
                pending.timeout_s = max(SHADOW_PATIENCE_S, pending.timeout_s)
            pending.shadow = shadow
            self.shadows_in_flight += shadow
        return pending

    def _hedge_ms(self) -> float:
        """How long to wait for the remote answer before running locally.

        Late enough that the device model still finishes by the deadline, but never
        before the remote path's own pessimistic time: cutting off answers that are
        merely typical would turn every slow device into a flood of fallbacks.
        """
        est = self.estimates
        if est.remote_ms.high is None:  # nothing known (a fresh start, or just back from an outage)
            return self.deadline_ms
        local_start = self.deadline_ms - (est.local_ms.high or 0.0)
        return min(self.deadline_ms, max(local_start, est.remote_ms.high))

    def succeeded(
        self,
        pending: Pending,
        exchange: Exchange,
        raced: bool = False,
        device: tuple[Prediction, StageTimes] | None = None,
    ) -> FrameResult:
        """The remote answer serves the frame; `raced`: it came after the hedge, before the device model.

        `device`: the device's own result, when it finished first but the more accurate remote
        answer was waited for; its time still teaches the estimators.
        """
        if device is not None:
            self.learn_device(device[1].total_ms, len(device[0].boxes), pending.decision.device_variant)
        result = self.remote_result(pending, exchange)
        self._judge_race(pending, won=True)
        if pending.decision.race:
            result.reason = f"{pending.decision.reason}; the server answered first"
        elif raced:
            result.reason = f"remote answered after the {pending.hedge_s * 1000:.0f} ms hedge, before the device model"
        self.observe(result, pending)
        return result

    def failed(self, pending: Pending, failure: TransportError, still_running: bool = False) -> None:
        """The call failed, or lost the race against the device model: count it against the remote path.

        `still_running`: it lost the race but may yet answer. A slow answer is no broken link, so
        the breaker hears of it only if it ends in an error (`late`).
        """
        if not still_running:
            self.breaker.failure()
        self._note_refusal(failure)
        est = self.estimates
        spent = elapsed_ms(pending.started)
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

    def lost_race(self, pending: Pending, error: BaseException | None) -> TransportError | None:
        """The device model finished first: count the call (`error` if it already failed, else still running).

        A frame raced from the start (`Decision.race`) loses nothing when the device is first: the
        call runs on as a measurement of the remote path, judged like a probe when it answers (None).
        """
        self._judge_race(pending, won=False)
        if error is None and pending.decision.race:
            pending.shadow = True
            self.shadows_in_flight += 1
            return None
        failure = error if isinstance(error, TransportError) else no_answer_in_time(pending.hedge_s)
        self.failed(pending, failure, still_running=error is None)
        return failure

    def late(self, pending: Pending, outcome: Exchange | TransportError) -> None:
        """A hedged or shadow call finished after its frame was answered (called from any thread)."""
        with self._late_lock:
            self._late.append((pending, outcome, elapsed_ms(pending.started)))

    def finish_local(
        self,
        pending: Pending,
        prediction: Prediction,
        stages: StageTimes,
        variant: str,
        failure: TransportError | None,
    ) -> FrameResult:
        sent = pending.request.ByteSize() if pending.request is not None else 0
        variant = pending.decision.device_variant or variant  # the rung of the ladder the policy chose
        result = self.local_result(pending, prediction, stages, variant, failure, sent)
        self.observe(result, pending)
        return result

    def unanswered(self, pending: Pending, failure: TransportError | None) -> FrameResult:
        """No device model and no answer from the server: the frame still gets a result, saying why."""
        reason = pending.decision.reason
        if failure is not None:
            reason = f"{self.device_missing}; the server failed ({failure.code}: {failure.message})"
        sent = pending.request.ByteSize() if pending.request is not None else 0
        timings = Timings(total_ms=elapsed_ms(pending.started))
        result = self._result(pending, Where.NONE, reason, Prediction(), timings, "", sent)
        result.error = reason
        return result

    # -- the pieces --------------------------------------------------------------------------

    def decide(self) -> tuple[int, Decision]:
        """Number the next frame and choose its path. Privacy is checked here, before anything else."""
        frame_id = self.frames
        self.frames += 1
        blocked = self._remote_blocked()
        if self.device_missing:
            if blocked:
                return frame_id, Decision(Where.NONE, f"{self.device_missing}; {blocked}")
            return frame_id, Decision(Where.REMOTE, f"{self.device_missing}: sent to the server")
        inp = PolicyInput(
            frame_id, self.estimates, self.deadline_ms, not blocked, blocked, self.shadows_in_flight > 0,
            time.monotonic() - self.last_remote_answer, self.device_options, self.remote_jpeg_accuracy,
        )  # fmt: skip
        decision = self.policy.decide(inp)
        if blocked and decision.where == Where.REMOTE:  # a policy may not overrule privacy or the breaker
            decision = self.policy.blocked(inp)
        elif decision.where == Where.REMOTE and self.breaker.state == BreakerState.HALF_OPEN:
            # Testing a link that just failed with a real frame would make the app wait for it again.
            # Whether the link is back is all the probe asks: a thumbnail says it for a third of the bytes.
            probing = self.shadows_in_flight == 0
            why = "remote recovering: " + ("probing it in the background" if probing else "waiting for the probe")
            decision = replace(
                decision, where=Where.LOCAL, shadow=probing, race=False, reason=why, probe_scale=THUMBNAIL_SCALE
            )
        return frame_id, decision

    def _remote_blocked(self) -> str:
        """Why nothing may be sent now, or "" when sending is allowed."""
        if self.privacy == Privacy.LOCAL_ONLY:
            return "privacy: local-only"
        if self.privacy == Privacy.REDACT and self.redact is None:
            return f"privacy: redact, but {self.redact_missing}: frames stay on the device"
        if self.refusal and time.monotonic() - self.refused_at < REFUSED_RETRY_S:
            return f"remote refused this client ({self.refusal})"
        if not self.breaker.allows():
            return "remote unavailable: circuit open"
        return ""

    def request(self, pending: Pending, frame: np.ndarray, scale: float = 1.0) -> pb.InferRequest:
        """`frame` as a JPEG request at `pending.quality` (in `redact`, painted over and verified first,
        then scaled by `scale`); the device's time for it goes to `pending.encode_ms`.

        PermissionError: the frame must not leave (a privacy mode forbids it, or a face remained).
        """
        start = time.perf_counter()
        with self.device.paying():  # the device's own work: redaction, scaling, JPEG, the request
            if self.privacy == Privacy.REDACT:
                # On the full frame: a face too small to find in a thumbnail still shows in it.
                frame = self._redacted(frame, pending)
            elif self.privacy != Privacy.ALLOW:  # defence in depth: never encode a frame that may not leave
                raise PermissionError(f"privacy mode {self.privacy} forbids sending frames")
            if scale < 1.0:
                frame = shrink(frame, scale)
            deadline_ms = self.deadline_ms * LATE_ANSWER_FACTOR
            request, _ = jpeg_request(self.model, pending.frame_id, frame, pending.quality, deadline_ms)
        pending.encode_ms = elapsed_ms(start)
        return request

    def _redacted(self, frame: np.ndarray, pending: Pending) -> np.ndarray:
        """`frame` painted over and verified; PermissionError (the frame must not leave) if that cannot be done."""
        if self.redact is None:
            raise PermissionError(f"privacy: redact, but {self.redact_missing}: the frame stays on the device")
        try:
            pending.redaction = self.redact(frame, pending.quality)
        except Exception as exc:
            self.redact, self.redact_missing = None, f"the face detector failed ({type(exc).__name__}: {exc})"
            raise PermissionError(f"privacy: redact, but {self.redact_missing}: the frame stays on the device") from exc
        if pending.redaction.image is None:
            raise PermissionError(
                f"privacy: redact, a face remained after painting twice (score {pending.redaction.score:.2f}): "
                "the frame stays on the device"
            )
        return pending.redaction.image

    def _remote_timings(self, pending: Pending, response: pb.InferResponse, total: float) -> Timings:
        timings = timings_from_server(response.timings)
        timings.encode_ms = pending.encode_ms
        timings.network_ms = max(0.0, total - pending.encode_ms - response.timings.total_ms)
        timings.total_ms = total
        return timings

    def remote_result(self, pending: Pending, exchange: Exchange) -> FrameResult:
        response = exchange.response
        timings = self._remote_timings(pending, response, elapsed_ms(pending.started))
        return self._result(
            pending, Where.REMOTE, pending.decision.reason, prediction_from_pb(response), timings,
            response.variant, exchange.request_bytes,
        )  # fmt: skip

    def local_result(
        self,
        pending: Pending,
        prediction: Prediction,
        stages: StageTimes,
        variant: str,
        failure: TransportError | None = None,
        uplink_bytes: int = 0,
    ) -> FrameResult:
        timings = Timings(local_inference_ms=stages.total_ms, total_ms=elapsed_ms(pending.started))
        reason = pending.decision.reason
        if failure is not None:
            reason = f"fallback: remote failed ({failure.code}: {failure.message})"
        elif pending.decision.race:
            reason = f"{reason}; the device answered first"
        result = self._result(pending, Where.LOCAL, reason, prediction, timings, variant, uplink_bytes)
        if failure is not None:
            result.error = str(failure)
        return result

    def _result(
        self,
        pending: Pending,
        where: Where,
        reason: str,
        prediction: Prediction,
        timings: Timings,
        variant: str,
        uplink_bytes: int,
    ) -> FrameResult:
        decision = pending.decision
        if self.notes:
            reason = "; ".join([reason, *self.notes])
            self.notes.clear()
        return FrameResult(
            frame_id=pending.frame_id,
            where=where,
            reason=reason,
            latency_ms=timings.total_ms,
            timings=timings,
            model=self.model,
            variant=variant,
            privacy=self.privacy.value,
            policy=self.policy.name,
            uplink_bytes=uplink_bytes,
            jpeg_quality=pending.quality or None,
            deadline_ms=self.deadline_ms,
            predicted_local_ms=decision.predicted_local_ms,
            predicted_remote_ms=decision.predicted_remote_ms,
            raced=decision.race,
            redact_repainted=pending.redaction is not None and pending.redaction.repainted,
            redact_kept_local=pending.redaction is not None and pending.redaction.kept_local,
            boxes=prediction.boxes,
            texts=prediction.texts,
            classes=prediction.classes,
        )

    # -- learning from outcomes ------------------------------------------------------------

    def _note_refusal(self, failure: TransportError) -> None:
        if is_refusal(failure.code, failure.message):
            self.refusal, self.refused_at = f"{failure.code}: {failure.message}", time.monotonic()

    def observe(self, result: FrameResult, pending: Pending) -> None:
        if result.where == Where.REMOTE:
            self.refusal = ""
            if self.breaker.state != BreakerState.CLOSED:
                self.estimates.after_outage()
            self.breaker.success()
            self._learn_remote(pending, result.timings, result.latency_ms, len(result.boxes))
            if not pending.decision.seed:  # (a seed is never judged: see `Decision.seed`)
                self.estimates.remote_late.update(0.0)
            self._judge_in_time(pending, result.latency_ms)
            self.last_remote_answer = time.monotonic()
        elif result.error is None:
            self.learn_device(result.timings.local_inference_ms, len(result.boxes), result.variant)
        if result.error is None:
            self.estimates.content = len(result.boxes)

    def learn_device(self, ms: float, boxes: int, variant: str | None = None) -> None:
        """A full device run: how long it took, for how many boxes (also of one whose answer went unused).

        A variant other than the default teaches how much longer than the default it takes on the same content.
        """
        est = self.estimates
        if variant and self.device_options and variant != self.device_options[0].name:
            base = est.local_for(boxes)
            if base:
                est.variant_extra.setdefault(variant, Ewma()).update(ms - base)
            return
        est.local_ms.update(ms)
        est.local_fit.update(boxes, ms)

    def remote_time_left_s(self, pending: Pending) -> float:
        """How long a frame that has the device's result may still wait for the more accurate remote one."""
        if not pending.decision.prefer_remote:
            return 0.0
        # A small margin: the answer must still be handed over before the deadline passes.
        return max(0.0, (self.deadline_ms * 0.98 - elapsed_ms(pending.started)) / 1000.0)

    def _judge_race(self, pending: Pending, won: bool) -> None:
        """Whether a race's remote answer served its frame; seeds are not judged."""
        if pending.decision.race and not pending.decision.seed:
            self.estimates.race_won.update(1.0 if won else 0.0)

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
        est.server_fit.update(boxes, server_ms)
        est.link.update(pending.request.ByteSize(), timings.network_ms)
        est.jpeg.update(pending.quality, len(pending.request.encoded.data))

    def _learn_thumbnail(self, pending: Pending, timings: Timings) -> float:
        """Teach the link model a thumbnail's network time; the round trip the frame itself would have taken.

        The frame would have taken the same link, plus its extra bytes at the link's throughput, and its
        own encoding and server time (as last measured) in place of the thumbnail's. Only the link is
        learned: the thumbnail's size, encoding and server time are not the frame's.
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

    def _apply_late(self) -> None:
        with self._late_lock:
            late, self._late = self._late, []
        normal_call_ms = max(1.0, LATE_ANSWER_FACTOR * self.deadline_ms / 1000.0) * 1000.0
        for pending, outcome, total in late:
            self.shadows_in_flight -= pending.shadow
            answered = isinstance(outcome, Exchange)
            if isinstance(outcome, Exchange):
                self.last_remote_answer = time.monotonic()
            else:
                self._note_refusal(outcome)
                # No answer at all, from any call (a probe's, a raced frame's, a hedged one's): that is what the
                # breaker counts, so that the first answer after an outage is read as the link coming back
                # (below), not as a sample of the link: a call sent into the dark that waits out the rest of it
                # is no measure.
                self.breaker.failure()
            if not pending.shadow:  # a call that lost its race: already counted late, its timing still teaches
                if isinstance(outcome, Exchange):
                    timings = self._remote_timings(pending, outcome.response, total)
                    self._learn_remote(pending, timings, total, len(outcome.response.boxes))
                continue
            if not answered:
                self._judge_in_time(pending, None)
                self.estimates.remote_late.update(1.0)
                continue
            assert isinstance(outcome, Exchange)
            if self.breaker.state != BreakerState.CLOSED or (total > normal_call_ms and self.breaker.failures):
                # A probe that waited out an outage (calls failed meanwhile): the link is back, but how long
                # the probe took says nothing about the link now. Start afresh; the next frames measure it.
                self.estimates.after_outage()
                self.breaker.success()
                continue
            if total > normal_call_ms:
                # Slow, not dark (no call failed meanwhile): the link did answer, but a probe this slow
                # may have sat out a stall, so its time is no sample of the link now. It counts as late,
                # and as a round trip of at least a normal call; what was learned before stays.
                self._judge_in_time(pending, total)  # (a thumbnail too: its frame would not have been faster)
                if not pending.decision.seed:  # (a seed is never judged: see `Decision.seed`)
                    self.estimates.remote_late.update(1.0)
                self.estimates.remote_ms.update(normal_call_ms)
                continue
            # Late means it would not have served the frame: a sent frame races the device model from
            # the hedge on, so an answer counts until the device would have finished.
            in_time_ms = self._hedge_ms() + (self.estimates.local_ms.value or 0.0)
            timings = self._remote_timings(pending, outcome.response, total)
            if pending.thumbnail:
                total = self._learn_thumbnail(pending, timings)  # judged as the frame itself would have been
            else:
                self._learn_remote(pending, timings, total, len(outcome.response.boxes))
            self._judge_in_time(pending, total)
            if not pending.decision.seed:
                self.estimates.remote_late.update(0.0 if total <= in_time_ms else 1.0)
