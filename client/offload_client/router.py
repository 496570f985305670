"""The frame router: the I/O-free core that the sync and async clients share.

It asks the policy where a frame goes, builds the request, turns replies and
local runs into `FrameResult`s, and feeds every result back to the estimators
and the circuit breaker. The clients only do the waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from offload_client._proto import offload_pb2 as pb
from offload_client.engine.image import encode_jpeg
from offload_client.policy import CircuitBreaker, Decision, Estimates, Policy, PolicyInput
from offload_client.privacy import Privacy
from offload_client.transport import Exchange, TransportError
from offload_client.types import FrameResult, Prediction, StageTimes, Timings, Where
from offload_client.wire import prediction_from_pb, timings_from_server


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


@dataclass
class Pending:
    """A frame between decision and result; `request` is set when it is to be sent."""

    frame_id: int
    decision: Decision
    started: float
    request: pb.InferRequest | None = None
    encode_ms: float = 0.0
    budget_s: float = 0.0


class FrameRouter:
    def __init__(
        self,
        model: str,
        policy: Policy,
        privacy: Privacy,
        deadline_ms: float,
        jpeg_quality: int,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self.privacy = privacy
        self.deadline_ms = deadline_ms
        self.jpeg_quality = jpeg_quality
        self.breaker = breaker or CircuitBreaker()
        self.estimates = Estimates()
        self.frames = 0

    def begin(self, frame: np.ndarray) -> Pending:
        """Decide where `frame` runs; when remote, encode it and compute the time left for the call."""
        started = time.perf_counter()
        frame_id, decision = self.decide()
        pending = Pending(frame_id, decision, started)
        if decision.where == Where.REMOTE:
            pending.request, pending.encode_ms = self.request(frame_id, frame)
            pending.budget_s = max(0.001, (self.deadline_ms - elapsed_ms(started)) / 1000.0)
        return pending

    def succeeded(self, pending: Pending, exchange: Exchange) -> FrameResult:
        result = self.remote_result(pending.frame_id, pending.decision, exchange, pending.encode_ms, pending.started)
        self.observe(result)
        return result

    def failed(self, pending: Pending, failure: TransportError) -> None:
        """A failed or late remote call counts against the remote path's estimate and the breaker."""
        self.breaker.failure()
        self.estimates.remote_ms.update(max(elapsed_ms(pending.started), self.deadline_ms))

    def finish_local(
        self,
        pending: Pending,
        prediction: Prediction,
        stages: StageTimes,
        variant: str,
        failure: TransportError | None,
    ) -> FrameResult:
        sent = pending.request.ByteSize() if pending.request is not None else 0
        result = self.local_result(
            pending.frame_id, pending.decision, prediction, stages, variant, pending.started, failure, sent
        )
        self.observe(result)
        return result

    def decide(self) -> tuple[int, Decision]:
        """Number the next frame and choose its path. Privacy is checked here, before anything else."""
        frame_id = self.frames
        self.frames += 1
        blocked = ""
        if self.privacy == Privacy.LOCAL_ONLY:
            blocked = "privacy: local-only"
        elif not self.breaker.allows():
            blocked = "remote unavailable: circuit open"
        inp = PolicyInput(frame_id, self.estimates, self.deadline_ms, not blocked, blocked)
        decision = self.policy.decide(inp)
        if blocked and decision.where == Where.REMOTE:  # a policy may not overrule privacy or the breaker
            decision = self.policy.blocked(inp)
        return frame_id, decision

    def request(self, frame_id: int, frame: np.ndarray) -> tuple[pb.InferRequest, float]:
        """The frame as a JPEG request, and the encode time."""
        if self.privacy != Privacy.ALLOW:  # defence in depth: never encode a frame that may not leave
            raise PermissionError(f"privacy mode {self.privacy} forbids sending frames")
        start = time.perf_counter()
        data = encode_jpeg(frame, self.jpeg_quality)
        encode_ms = elapsed_ms(start)
        request = pb.InferRequest(
            model=self.model,
            frame_id=frame_id,
            encoded=pb.EncodedImage(data=data, format="jpeg"),
            deadline_ms=int(self.deadline_ms),
        )
        return request, encode_ms

    def remote_result(
        self, frame_id: int, decision: Decision, exchange: Exchange, encode_ms: float, started: float
    ) -> FrameResult:
        response = exchange.response
        total = elapsed_ms(started)
        timings = timings_from_server(response.timings)
        timings.encode_ms = encode_ms
        timings.network_ms = max(0.0, total - encode_ms - response.timings.total_ms)
        timings.total_ms = total
        prediction = prediction_from_pb(response)
        return self._result(
            frame_id,
            Where.REMOTE,
            decision.reason,
            decision,
            prediction,
            timings,
            response.variant,
            uplink_bytes=exchange.request_bytes,
        )

    def local_result(
        self,
        frame_id: int,
        decision: Decision,
        prediction: Prediction,
        stages: StageTimes,
        variant: str,
        started: float,
        failure: TransportError | None = None,
        uplink_bytes: int = 0,
    ) -> FrameResult:
        total = elapsed_ms(started)
        timings = Timings(local_inference_ms=stages.total_ms, total_ms=total)
        reason = decision.reason
        if failure is not None:
            reason = f"fallback: remote failed ({failure.code}: {failure.message})"
        result = self._result(frame_id, Where.LOCAL, reason, decision, prediction, timings, variant, uplink_bytes)
        if failure is not None:
            result.error = str(failure)
        return result

    def _result(
        self,
        frame_id: int,
        where: Where,
        reason: str,
        decision: Decision,
        prediction: Prediction,
        timings: Timings,
        variant: str,
        uplink_bytes: int,
    ) -> FrameResult:
        return FrameResult(
            frame_id=frame_id,
            where=where,
            reason=reason,
            latency_ms=timings.total_ms,
            timings=timings,
            model=self.model,
            variant=variant,
            privacy=self.privacy.value,
            policy=self.policy.name,
            uplink_bytes=uplink_bytes,
            predicted_local_ms=decision.predicted_local_ms,
            predicted_remote_ms=decision.predicted_remote_ms,
            boxes=prediction.boxes,
            texts=prediction.texts,
            classes=prediction.classes,
        )

    def observe(self, result: FrameResult) -> None:
        est = self.estimates
        if result.where == Where.REMOTE:
            self.breaker.success()
            est.remote_ms.update(result.latency_ms)
            est.network_ms.update(result.timings.network_ms)
            est.server_ms.update(result.timings.total_ms - result.timings.network_ms - result.timings.encode_ms)
        elif result.error is None:
            est.local_ms.update(result.timings.local_inference_ms)
