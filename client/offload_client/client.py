"""`OffloadClient`: run each frame on the device or on the server, whichever the policy picks."""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

import numpy as np

from offload_client import steps
from offload_client._client_base import ClientBase
from offload_client.continuous import KeyFrame, in_background
from offload_client.pending import Pending
from offload_client.region_plan import RegionPlan
from offload_client.transport import Exchange, GrpcTransport, Transport, TransportError
from offload_core.types import FrameResult


class OffloadClient(ClientBase[Transport]):
    __doc__ = (
        (ClientBase.__doc__ or "")
        + """
    Example:
        >>> with OffloadClient("localhost:50051", model="text-spotter", policy="adaptive") as oc:  # doctest: +SKIP
        ...     result = oc.infer(frame)               # a BGR numpy image
        ...     print(result.where, result.reason, result.latency_ms, result.words)
        ...     oc.privacy = "local-only"              # from the next frame on, nothing is sent
    """
    )

    _landing: Future[None] | None = None  # continuous mode: the key frame being inferred

    def _connect(self, target: str) -> Transport:
        return GrpcTransport(target, security=self.security)

    def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame (HxWx3) and say where it ran and why.

        In continuous mode, answer at once from the tracker; a key frame's inference runs on a
        thread of its own and lands on a later frame.
        """
        if self._continuous is None:
            return self._infer_frame(frame)
        key = self._continuous.arrive(frame, time.monotonic())
        if key is not None:
            self._landing = self._key_frames.submit(self._key_frame, key)
            wait([self._landing], timeout=self._continuous.budget_s())
        return self._continuous.show()

    def settle(self, timeout_s: float = 60.0) -> FrameResult:
        """Continuous mode: wait until the key frame in flight has landed, and answer the last frame again.

        For replays that must not depend on timing (tests, offline evaluation): the answer of a key
        frame then shows on that frame itself. An app at camera rate never calls it.

        >>> oc.infer(frame).key_frame, oc.settle().source        # doctest: +SKIP
        (True, <Source.FRESH_REMOTE: 'fresh-remote'>)
        """
        if self._continuous is None:
            raise ValueError("settle() is for continuous mode; this client is per-frame")
        if self._landing is not None:
            wait([self._landing], timeout=timeout_s)
        return self._continuous.show()

    @functools.cached_property
    def _key_frames(self) -> ThreadPoolExecutor:
        """Continuous mode: key frames are inferred here, one at a time, as background work."""
        return ThreadPoolExecutor(1, thread_name_prefix="offload-key-frame", initializer=in_background)

    def _key_frame(self, key: KeyFrame) -> None:
        assert self._continuous is not None
        result = None
        try:
            result = self._infer_frame(key.image, key.plan)
        finally:  # also when it raised: the next key frame must not wait for this one
            self._continuous.land(key, result)

    def _infer_frame(self, frame: np.ndarray, plan: RegionPlan | None = None) -> FrameResult:
        """One frame, one inference: the router decides; this loop only performs its actions (send, run
        the device, wait) and reports what ended each one."""
        self._sync_device()
        call: Future[Exchange] | None = None
        sent: Pending | None = None  # the frame `call` carries
        device: Future[steps.DeviceOutcome] | None = None
        stop = threading.Event()
        step = self._router.begin(frame, plan)
        try:
            while not isinstance(step, FrameResult):
                event: steps.Event
                match step:
                    case steps.Send(frame=sent, call=remote, wait_s=wait_s):
                        call = self._submit(remote)
                        event = outcome(call, wait_s)
                    case steps.RunLocal(frame=pending, variant=variant, probe=probe):
                        if probe is not None:
                            self._follow(pending, self._submit(probe))
                        event = self._run_device(frame, variant).result()
                    case steps.Race(variant=variant):
                        assert call is not None
                        device = self._run_device(frame, variant, stop)
                        contenders: list[Future[Any]] = [call, device]
                        wait(contenders, return_when=FIRST_COMPLETED)
                        event = device.result() if device.done() else outcome(call, 0.0)
                    case steps.AwaitRemote(wait_s=wait_s):
                        assert call is not None
                        event = outcome(call, wait_s)
                    case steps.AwaitDevice():
                        assert device is not None
                        event = device.result()
                step = self._router.next(step, event)
        finally:
            stop.set()  # a device run the remote answer made unnecessary
        if call is not None and sent is not None:
            self._follow(sent, call)
        return step

    def _submit(self, call: steps.Call) -> Future[Exchange]:
        # A background probe may wait for a reconnecting channel; the app is not waiting on it.
        return self._transport.submit(call.request, call.timeout_s, patient=call.patient)

    def _follow(self, pending: Pending, call: Future[Exchange]) -> None:
        """Hand a call that outlives its frame to the router when it ends; its timing may still teach."""
        call.add_done_callback(functools.partial(self._late_answer, pending))

    def _late_answer(self, pending: Pending, call: Future[Exchange]) -> None:
        exc = call.exception()
        if exc is None:
            self._router.late(pending, call.result())
        elif isinstance(exc, TransportError):
            self._router.late(pending, exc)

    def close(self) -> None:
        if "_key_frames" in vars(self):  # made only once continuous mode had a key frame
            self._key_frames.shutdown(wait=True, cancel_futures=True)
        self._transport.close()
        self._device.shutdown(wait=False, cancel_futures=True)
        self.local.close()  # a device model still syncing must not outlive the client (see LocalEngine.close)

    def __enter__(self) -> OffloadClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def outcome(call: Future[Exchange], wait_s: float) -> steps.Event:
    """How `call` stands after waiting up to `wait_s` for it."""
    done, _ = wait([call], timeout=wait_s)
    if not done:
        return steps.TimedOut()
    exc = call.exception()
    if isinstance(exc, TransportError):
        return steps.Failed(exc)
    if exc is not None:
        raise exc
    return steps.Answered(call.result())
