"""How a frame ends: the `FrameResult` of the server's answer, the device's, or neither, and what each
teaches the learner. Mixed into `FrameRouter` (router.py), whose state it reads; the steps stay there."""

from __future__ import annotations

from collections.abc import Callable

from offload_client.energy import EnergyMeter
from offload_client.learning import Learner
from offload_client.pending import Pending
from offload_client.policy import DeviceOption, Policy
from offload_client.transport import Exchange, TransportError
from offload_client.uplink import Uplink
from offload_core.types import FrameResult, Prediction, StageTimes, Timings, Where
from offload_core.wire import prediction_from_pb


class Outcomes:
    """The results a frame can end in."""

    _learner: Learner
    _uplink: Uplink
    _energy: EnergyMeter
    _policy: Policy
    _clock: Callable[[], float]
    _deadline_ms: float
    _device_missing: str
    _device_options: tuple[DeviceOption, ...]
    _notes: list[str]

    def _remote_served(self, pending: Pending, exchange: Exchange, raced: bool = False) -> FrameResult:
        """The remote answer serves the frame; `raced`: it came after the hedge, while the device ran
        (or after the device finished, when the frame waited for the more accurate answer)."""
        if pending.device is not None:  # the device's unused result still teaches its time
            prediction, stages, _ = pending.device
            self._learn_device(stages.total_ms, len(prediction.boxes), pending.decision.device_variant)
        self._learner.race_judged(pending, won=True)
        reason = pending.decision.reason
        if pending.decision.race:
            reason = f"{reason}; the server answered first"
        elif raced:
            reason = f"remote answered after the {pending.hedge_s * 1000:.0f} ms hedge, before the device model"
        response = exchange.response
        self._uplink.accepts = frozenset(response.accepts)  # what this server takes besides frames, as of now
        if response.HasField("load"):  # how busy the server is now (a server of 0.4 or later says)
            self._learner.heard_load(response.load.predicted_wait_ms)
        timings = self._learner.remote_timings(pending, exchange, self._learner.elapsed_ms(pending.started))
        prediction = prediction_from_pb(response)
        if pending.plan is not None:  # the words the regions left home, as tracked
            prediction = pending.plan.merged(prediction)
        result = self._result(
            pending, Where.REMOTE, reason, prediction, timings, response.variant,
            exchange.request_bytes, exchange.response_bytes,
        )  # fmt: skip
        self._learner.remote_served(pending, timings, len(result.boxes))
        self._learner.content(len(result.boxes))
        return result

    @staticmethod
    def _device_result(pending: Pending) -> tuple[Prediction, StageTimes, str]:
        assert pending.device is not None, "the device's result comes before waiting on for the remote one"
        return pending.device

    def _device_served(self, pending: Pending, prediction: Prediction, stages: StageTimes, ran: str) -> FrameResult:
        variant = pending.decision.device_variant or ran  # the rung of the ladder the policy chose
        timings = Timings(local_inference_ms=stages.total_ms, total_ms=self._learner.elapsed_ms(pending.started))
        reason, failure = pending.decision.reason, pending.failure
        if failure is not None:
            reason = f"fallback: remote failed ({failure.code}: {failure.message})"
        elif pending.decision.race:
            reason = f"{reason}; the device answered first"
        result = self._result(pending, Where.LOCAL, reason, prediction, timings, variant, pending.uplink_bytes)
        if failure is not None:
            result.error = str(failure)
        else:  # (a fallback's time is not learned: the device ran while the call still used the CPU)
            self._learn_device(stages.total_ms, len(result.boxes), variant)
            self._learner.content(len(result.boxes))
        return result

    def _learn_device(self, ms: float, boxes: int, variant: str | None) -> None:
        default = self._device_options[0].name if self._device_options else None
        self._learner.device_ran(ms, boxes, variant if variant and default and variant != default else None)

    def _unanswered(self, pending: Pending, failure: TransportError | None) -> FrameResult:
        """No device answer and no answer from the server: the frame still gets a result, saying why."""
        device = pending.device_error or self._device_missing
        reason = pending.device_error or pending.decision.reason
        if failure is not None:
            reason = f"{device}; the server failed ({failure.code}: {failure.message})"
        timings = Timings(total_ms=self._learner.elapsed_ms(pending.started))
        result = self._result(pending, Where.NONE, reason, Prediction(), timings, "", pending.uplink_bytes)
        result.error = reason
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
        downlink_bytes: int = 0,
    ) -> FrameResult:
        pending.image = None  # the frame is the app's again: a call that outlives it holds no pixels
        decision = pending.decision
        # The device's time on the frame: its encoding, and its model (also when it lost a race it finished,
        # and until the answer came when the answer cut its run short: at least that, as it stops between steps).
        device_ms = pending.encode_ms + timings.local_inference_ms
        if where == Where.REMOTE and pending.device is not None:
            device_ms += pending.device[1].total_ms
        elif where == Where.REMOTE and pending.device_since is not None:
            device_ms += (self._clock() - pending.device_since) * 1000.0
        # What was sent was on the air from its encoding until now (a call still running is charged so far).
        sent = pending.started + pending.encode_ms / 1000.0
        transfer = (sent, self._clock(), uplink_bytes, downlink_bytes) if pending.request is not None else None
        radio_mj, compute_mj = self._energy.charge(device_ms, transfer)
        if self._notes:
            reason = "; ".join([reason, *self._notes])
            self._notes.clear()
        return FrameResult(
            frame_id=pending.frame_id,
            where=where,
            reason=reason,
            latency_ms=timings.total_ms,
            timings=timings,
            model=self._uplink.model,
            variant=variant,
            privacy=self._uplink.privacy.value,
            policy=self._policy.name,
            uplink_bytes=uplink_bytes,
            energy_mj=radio_mj + compute_mj,
            radio_mj=radio_mj,
            compute_mj=compute_mj,
            jpeg_quality=pending.quality or None,
            deadline_ms=self._deadline_ms,
            predicted_local_ms=decision.predicted_local_ms,
            predicted_remote_ms=decision.predicted_remote_ms,
            raced=decision.race,
            redact_repainted=pending.redaction is not None and pending.redaction.repainted,
            redact_kept_local=pending.redaction is not None and pending.redaction.kept_local,
            boxes=prediction.boxes,
            texts=prediction.texts,
            classes=prediction.classes,
            tensors=prediction.tensors,
        )
