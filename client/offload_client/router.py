"""The frame router: where each frame runs, as a state machine with no I/O of its own.

`begin(image)` decides the frame's path and returns the first action; the driver
performs it and reports the event that ended it to `next(action, event)`, which
returns the next action or the frame's `FrameResult` (see `steps.py`). The sync
and async clients are such drivers; tests drive it with events and a fake clock.

A sent frame waits for its answer until the hedge (`Learner.hedge_ms`): the latest
moment the device model can start and still finish by the deadline. Then the device
races the call and the first to finish serves the frame. A probe (`Decision.shadow`)
sends a copy in the background while the device answers, to measure the link.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from offload_client.device_speed import DeviceSpeed
from offload_client.energy import EnergyMeter
from offload_client.learning import Learner
from offload_client.pending import Pending
from offload_client.policy import CircuitBreaker, Decision, DeviceOption, Estimates, Ewma, Policy, PolicyInput
from offload_client.policy.base import THUMBNAIL_SCALE
from offload_client.policy.breaker import BreakerState
from offload_client.privacy import Privacy
from offload_client.region_plan import RegionPlan, TextFinder
from offload_client.router_outcomes import Outcomes
from offload_client.steps import (
    Action,
    Answered,
    AwaitDevice,
    AwaitRemote,
    Call,
    DeviceDone,
    DeviceFailed,
    Event,
    Failed,
    Race,
    RunLocal,
    Send,
    Step,
    TimedOut,
)
from offload_client.transport import Exchange, TransportError
from offload_client.transport import late as no_answer_in_time
from offload_client.uplink import Redact, Uplink
from offload_core.types import Where

# How long a background probe may wait for a link to come back; one at a time, so it is cheap.
SHADOW_PATIENCE_S = 10.0


class FrameRouter(Outcomes):
    """Decides each frame's path and turns the driver's events into results; see the module docstring.

    Example:
        >>> router = FrameRouter("text-spotter", AlwaysLocal(), Privacy.ALLOW, 500.0, 90)  # doctest: +SKIP
        >>> step = router.begin(image)                           # RunLocal(...): the device answers
        >>> router.next(step, DeviceDone(prediction, stages, "device")).where             # doctest: +SKIP
        <Where.LOCAL: 'local'>
    """

    def __init__(
        self,
        model: str,
        policy: Policy,
        privacy: Privacy,
        deadline_ms: float,
        jpeg_quality: int,
        breaker: CircuitBreaker | None = None,
        device: DeviceSpeed | None = None,
        clock: Callable[[], float] = time.monotonic,
        energy: EnergyMeter | None = None,
    ) -> None:
        self._policy = policy
        self._energy = energy or EnergyMeter()
        self._deadline_ms = deadline_ms
        self._jpeg_quality = jpeg_quality
        self._clock = clock
        # Every byte sent is made there; the emulated device pays for that work (redaction, JPEG) too.
        self._uplink = Uplink(model, privacy, device or DeviceSpeed(), clock)
        self._learner = Learner(deadline_ms, breaker or CircuitBreaker(clock=clock), clock)
        self._frames = 0
        # The app's time between frames, for the energy objective: how long the radio would rest between them.
        self._frame_gap = Ewma()
        self._last_frame_at: float | None = None
        # Why the device model cannot answer ("" when it can): then every frame that may leave goes to
        # the server and waits for it, and one that may not gets a result with no answer.
        self._device_missing = ""
        self._device_options: tuple[DeviceOption, ...] = ()
        self._remote_jpeg_accuracy: tuple[tuple[int, float], ...] = ()
        # Said once, in the next result's reason (e.g. a device provider this onnxruntime lacks).
        self._notes: list[str] = []

    # -- what the router is told ------------------------------------------------------------

    def device_ready(
        self,
        missing: str,
        options: tuple[DeviceOption, ...] = (),
        remote_jpeg_accuracy: tuple[tuple[int, float], ...] = (),
    ) -> None:
        """Whether the device model can answer (`missing` says why not) and, once it can, its variants
        (fastest first: the default) and the server's accuracy by JPEG quality."""
        self._device_missing = missing
        if not missing:
            self._device_options = options
            self._remote_jpeg_accuracy = remote_jpeg_accuracy

    def redaction_ready(self, redact: Redact | None, missing: str = "") -> None:
        """Privacy `redact`'s painter, or None and why it is missing (then frames stay on the device)."""
        self._uplink.redaction_ready(redact, missing)

    def finder_ready(self, finder: TextFinder | None) -> None:
        """The device's text detector, for looks at whole key frames (continuous mode's region uplink)."""
        self._uplink.finder = finder

    def use_privacy(self, mode: Privacy) -> None:
        """From the next frame on."""
        self._uplink.privacy = mode

    def note(self, text: str) -> None:
        """Say `text` once, in the next result's reason."""
        self._notes.append(text)

    def late(self, pending: Pending, outcome: Exchange | TransportError) -> None:
        """A call finished after its frame ended (from any thread); it teaches if the frame followed it."""
        if pending.followed:
            self._learner.late(pending, outcome)

    # -- what may be read -------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._uplink.model

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def privacy(self) -> Privacy:
        return self._uplink.privacy

    @property
    def deadline_ms(self) -> float:
        return self._deadline_ms

    @property
    def estimates(self) -> Estimates:
        return self._learner.estimates

    @property
    def breaker(self) -> CircuitBreaker:
        return self._learner.breaker

    @property
    def device_options(self) -> tuple[DeviceOption, ...]:
        return self._device_options

    @property
    def has_redaction(self) -> bool:
        return self._uplink.has_redaction

    # -- one frame ------------------------------------------------------------------------

    def begin(self, image: np.ndarray, plan: RegionPlan | None = None) -> Step:
        """Decide where `image` runs and return the first action (or, with nothing to run, the result).

        `plan`: continuous mode's regions of the frame to send instead of all of it; used only where the
        server said it takes them (`InferResponse.accepts`), and the policy weighs its smaller upload.
        """
        self._learner.apply_late()
        plan = plan if self._uplink.takes(plan) else None
        self._learner.estimates.upload_share = plan.share if plan is not None else 1.0
        now = self._clock()
        if self._last_frame_at is not None:
            self._frame_gap.update(now - self._last_frame_at)
        self._last_frame_at = now
        pending = Pending(self._frames, self._decide(self._frames), now, image=image, plan=plan)
        self._frames += 1
        decision = pending.decision
        probing = decision.shadow and decision.where == Where.LOCAL and self._remote_blocked() == ""
        if decision.where == Where.REMOTE or probing:
            try:
                call = self._call(pending, image, probing)
            except PermissionError as exc:  # redaction failed or a face remained: the frame stays on the device
                pending.decision = replace(decision, where=Where.LOCAL, shadow=False, race=False, reason=str(exc))
                pending.quality = 0
            else:
                if probing:
                    return RunLocal(pending, decision.device_variant, probe=call)
                return Send(pending, call, pending.hedge_s)
        if self._device_missing:
            return self._unanswered(pending, None)
        if pending.decision.encode_at is not None:
            self._encode_only(pending, image, pending.decision.encode_at)
        return RunLocal(pending, pending.decision.device_variant)

    def next(self, action: Action, event: Event) -> Step:
        """The step after `event` ended `action`."""
        pending = action.frame
        match action, event:
            case Send(), Answered(exchange):
                return self._remote_served(pending, exchange)
            case ((Race() | AwaitRemote()), Answered(exchange)):
                return self._remote_served(pending, exchange, raced=True)
            case Send(), Failed(error):
                return self._without_remote(pending, error)
            case Send(), TimedOut() if self._device_missing or pending.device_error:  # the call was the only way
                return self._without_remote(pending, no_answer_in_time(pending.hedge_s))
            case Send(), TimedOut():
                pending.device_since = self._clock()
                return Race(pending, pending.decision.device_variant)
            case Race(), Failed(error):
                self._lost_race(pending, error)
                return AwaitDevice(pending)
            case Race(), DeviceDone(prediction, stages, variant):
                pending.device = (prediction, stages, variant)
                wait_s = self._learner.remote_time_left_s(pending)
                if wait_s > 0:  # the more accurate answer may still come in time
                    return AwaitRemote(pending, wait_s)
                self._lost_race(pending, None)
                return self._device_served(pending, prediction, stages, variant)
            case AwaitRemote(), (Failed() | TimedOut()) if pending.device_error:
                failure = event.error if isinstance(event, Failed) else no_answer_in_time(pending.timeout_s)
                self._learner.remote_failed(pending, failure)
                return self._unanswered(pending, failure)
            case ((RunLocal() | AwaitDevice() | Race()), DeviceFailed(error)):
                return self._device_failed(pending, error)
            case AwaitRemote(), Failed(error):
                self._lost_race(pending, error)
                return self._device_served(pending, *self._device_result(pending))
            case AwaitRemote(), TimedOut():
                self._lost_race(pending, None)
                return self._device_served(pending, *self._device_result(pending))
            case ((RunLocal() | AwaitDevice()), DeviceDone(prediction, stages, variant)):
                return self._device_served(pending, prediction, stages, variant)
        raise ValueError(f"{type(event).__name__} cannot end {type(action).__name__}")

    # -- the decision ---------------------------------------------------------------------

    def _decide(self, frame_id: int) -> Decision:
        """The frame's path. Privacy is checked here, before anything else."""
        blocked = self._remote_blocked()
        if self._device_missing:
            if blocked:
                return Decision(Where.NONE, f"{self._device_missing}; {blocked}")
            return Decision(Where.REMOTE, f"{self._device_missing}: sent to the server")
        learner, now = self._learner, self._clock()
        inp = PolicyInput(
            frame_id, learner.estimates, self._deadline_ms, not blocked, blocked, learner.probes_in_flight > 0,
            now - learner.last_remote_answer, self._device_options, self._remote_jpeg_accuracy,
            self._energy.radio.profile, self._energy.compute, self._energy.radio.quiet_s(now),
            self._frame_gap.value,
        )  # fmt: skip
        decision = self._policy.decide(inp)
        if blocked and decision.where == Where.REMOTE:  # a policy may not overrule privacy or the breaker
            return self._policy.blocked(inp)
        if decision.where == Where.REMOTE and learner.breaker.state == BreakerState.HALF_OPEN:
            # Testing a link that just failed with a real frame would make the app wait for it again.
            # Whether the link is back is all the probe asks: a thumbnail says it for a third of the bytes.
            probing = learner.probes_in_flight == 0
            why = "remote recovering: " + ("probing it in the background" if probing else "waiting for the probe")
            return replace(
                decision, where=Where.LOCAL, shadow=probing, race=False, reason=why, probe_scale=THUMBNAIL_SCALE
            )
        return decision

    def _remote_blocked(self) -> str:
        """Why nothing may be sent now, or "" when sending is allowed."""
        if private := self._uplink.blocked():
            return private
        if refused := self._learner.refused:
            return f"remote refused this client ({refused})"
        if not self._learner.breaker.allows():
            return "remote unavailable: circuit open"
        return ""

    # -- sending --------------------------------------------------------------------------

    def _call(self, pending: Pending, image: np.ndarray, probing: bool) -> Call:
        """The remote call for `pending` (the frame, or a probe of it); sets its hedge and timeout.

        PermissionError: the frame must not leave (a privacy mode forbids it, or a face remained).
        """
        learner, decision = self._learner, pending.decision
        pending.quality = decision.jpeg_quality or self._jpeg_quality
        scale = decision.probe_scale if probing else 1.0
        if probing:
            pending.plan = None  # a probe measures the link with a thumbnail of the whole frame
        pending.timeout_s = learner.call_timeout_s()
        pending.request = self._uplink.request(pending, image, scale, pending.timeout_s * 1000.0)
        pending.request.late_margin_ms = self._late_margin_ms(pending)
        hedge_s = max(0.001, learner.hedge_ms(decision.seed) / 1000.0 - learner.elapsed_ms(pending.started) / 1000.0)
        pending.hedge_s = 0.0 if decision.race else hedge_s
        if self._device_missing:  # nothing to hedge with: the server's answer is the only one
            pending.hedge_s = pending.timeout_s
        # The breaker's probe of a link that failed is patient: it waits out the outage and answers as
        # soon as the link is back. A policy's probe of a working link times out as a frame would.
        pending.patient = probing and learner.breaker.state == BreakerState.HALF_OPEN
        if pending.patient:
            pending.timeout_s = max(SHADOW_PATIENCE_S, pending.timeout_s)
        pending.shadow = pending.followed = probing
        learner.probes_in_flight += probing
        return Call(pending.request, pending.timeout_s, pending.patient)

    def _late_margin_ms(self, pending: Pending) -> int:
        """How long before the call's deadline its answer stops being of use (`InferRequest.late_margin_ms`).

        The call stays open past the frame's deadline so that a late answer still teaches the estimators,
        but the frame is due at its deadline: the server's admission refuses at arrival what it predicts
        comes after that, and the device answers at once. Told the call's deadline alone, it admitted
        answers the frame could no longer use (make bench-fleet: over half an overloaded server's work).
        """
        if self._device_missing:  # no device to answer instead: the server's answer is of use until the end
            return 0
        # The answer must also come back: the server's clock starts after the request's header crossed the
        # link, and its answer crosses it again. The link's round trip, as measured, covers both.
        back_ms = self._learner.estimates.link.rtt_ms or 0.0
        due_ms = self._deadline_ms - self._learner.elapsed_ms(pending.started) - back_ms
        return int(max(0.0, pending.timeout_s * 1000.0 - due_ms))

    def _encode_only(self, pending: Pending, image: np.ndarray, quality: int) -> None:
        """Encode the frame as it would be sent, at `quality`, and send nothing (`Decision.encode_at`): the
        estimators learn its size and the encoding's time, and the frame is charged the encoding."""
        trial = Pending(pending.frame_id, pending.decision, pending.started, quality=quality)
        try:
            request = self._uplink.request(trial, image, 1.0, self._deadline_ms)
        except PermissionError:
            return  # the frame may not leave: what it would carry does not matter
        pending.encode_ms = trial.encode_ms
        self._learner.encoded(quality, len(request.encoded.data), trial.encode_ms)

    def _without_remote(self, pending: Pending, failure: TransportError) -> Step:
        """The call failed before the hedge: the device answers, or, with no device model, nobody."""
        self._learner.remote_failed(pending, failure)
        if self._device_missing or pending.device_error:
            return self._unanswered(pending, failure)
        pending.failure = failure
        return RunLocal(pending, pending.decision.device_variant)

    def _device_failed(self, pending: Pending, error: str) -> Step:
        """The device model raised: the server answers the frame if it may and has not failed already."""
        pending.device_error = f"the device model failed ({error})"
        if pending.failure is None and pending.request is not None and not pending.shadow:  # raced: wait on
            return AwaitRemote(pending, max(0.0, pending.timeout_s - self._learner.elapsed_ms(pending.started) / 1e3))
        if pending.failure is None and pending.request is None and pending.image is not None:
            try:
                call = self._call(pending, pending.image, probing=False)
            except PermissionError:
                pass  # privacy keeps the frame home: it is answered with the error
            else:
                decision = pending.decision
                pending.decision = replace(decision, where=Where.REMOTE, reason=f"{pending.device_error}: sent")
                pending.hedge_s = pending.timeout_s  # nothing left to hedge with
                return Send(pending, call, pending.hedge_s)
        return self._unanswered(pending, pending.failure)

    def _lost_race(self, pending: Pending, error: TransportError | None) -> None:
        """The device serves the frame: count the call (`error` if it failed, else it is still running).

        A frame raced from the start (`Decision.race`) or sent to measure the link (`Decision.seed`) loses
        nothing when the device is first: the call runs on as a measurement of the remote path, judged like
        a probe when it answers.
        """
        self._learner.race_judged(pending, won=False)
        pending.followed = error is None
        if error is None and (pending.decision.race or pending.decision.seed):
            pending.shadow = True
            self._learner.probes_in_flight += 1
            return
        pending.failure = error or no_answer_in_time(pending.hedge_s)
        self._learner.remote_failed(pending, pending.failure, still_running=error is None)
