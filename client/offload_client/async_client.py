"""`AsyncOffloadClient`: the asyncio twin of `OffloadClient`; the device model runs off the event loop."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from types import TracebackType
from typing import Any

import numpy as np

from offload_client import steps
from offload_client._client_base import ClientBase
from offload_client.continuous import KeyFrame
from offload_client.pending import Pending
from offload_client.region_plan import RegionPlan
from offload_client.transport import AsyncGrpcTransport, AsyncTransport, Exchange, TransportError
from offload_core.types import FrameResult


class AsyncOffloadClient(ClientBase[AsyncTransport]):
    __doc__ = (
        (ClientBase.__doc__ or "")
        + """
    Example:
        >>> async with AsyncOffloadClient("localhost:50051", policy="adaptive") as oc:  # doctest: +SKIP
        ...     result = await oc.infer(frame)
    """
    )

    _key_task: asyncio.Future[None] | None = None  # continuous mode: the key frame being inferred

    def _connect(self, target: str) -> AsyncTransport:
        return AsyncGrpcTransport(target, security=self.security)

    async def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame; see `OffloadClient.infer`.

        In continuous mode the tracking runs off the event loop, and a key frame's inference is a
        task of its own that lands on a later frame.
        """
        if self._continuous is None:
            return await self._infer_frame(frame)
        key = await asyncio.to_thread(self._continuous.arrive, frame, time.monotonic())
        if key is not None:
            self._key_task = asyncio.ensure_future(self._key_frame(key))
            await asyncio.wait({self._key_task}, timeout=self._continuous.budget_s())
        return await asyncio.to_thread(self._continuous.show)

    async def settle(self, timeout_s: float = 60.0) -> FrameResult:
        """Continuous mode: wait until the key frame in flight has landed, and answer the last frame again
        (see `OffloadClient.settle`)."""
        if self._continuous is None:
            raise ValueError("settle() is for continuous mode; this client is per-frame")
        if self._key_task is not None:
            await asyncio.wait({self._key_task}, timeout=timeout_s)
        return await asyncio.to_thread(self._continuous.show)

    async def _key_frame(self, key: KeyFrame) -> None:
        assert self._continuous is not None
        result = None
        try:
            result = await self._infer_frame(key.image, key.plan, off_loop=True)
        finally:  # also when it raised or was cancelled: the next key frame must not wait for this one
            await asyncio.to_thread(self._continuous.land, key, result)

    async def _infer_frame(
        self, frame: np.ndarray, plan: RegionPlan | None = None, off_loop: bool = False
    ) -> FrameResult:
        """One frame, one inference; see `OffloadClient._infer_frame`.

        `off_loop`: prepare the frame (privacy gate, policy, encoding) on a thread. A key frame's preparation
        took 200-270 ms of CPU on a 2-core machine: on the event loop, the camera loop's next frame waited for
        it (continuous mode promises an answer at once). Per-frame calls prepare on the loop: an app may start
        several at once, and the router prepares one frame at a time.
        """
        self._sync_device()
        call: asyncio.Future[Exchange] | None = None
        sent: Pending | None = None  # the frame `call` carries
        device: asyncio.Future[steps.DeviceOutcome] | None = None
        stop = threading.Event()
        step = await asyncio.to_thread(self._router.begin, frame, plan) if off_loop else self._router.begin(frame, plan)
        try:
            while not isinstance(step, FrameResult):
                event: steps.Event
                match step:
                    case steps.Send(frame=sent, call=remote, wait_s=wait_s):
                        call = self._submit(remote)
                        event = await outcome(call, wait_s)
                    case steps.RunLocal(frame=pending, variant=variant, probe=probe):
                        if probe is not None:
                            self._follow(pending, self._submit(probe))
                        event = await asyncio.wrap_future(self._run_device(frame, variant))
                    case steps.Race(variant=variant):
                        assert call is not None
                        device = asyncio.wrap_future(self._run_device(frame, variant, stop))
                        contenders: set[asyncio.Future[Any]] = {call, device}
                        await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
                        event = device.result() if device.done() else await outcome(call, 0.0)
                    case steps.AwaitRemote(wait_s=wait_s):
                        assert call is not None
                        event = await outcome(call, wait_s)
                    case steps.AwaitDevice():
                        assert device is not None
                        event = await device
                step = self._router.next(step, event)
        finally:
            stop.set()  # a device run the remote answer made unnecessary
        if call is not None and sent is not None:
            self._follow(sent, call)
        return step

    @functools.cached_property
    def _background(self) -> set[asyncio.Future[Exchange]]:
        """Calls that outlived their frame, held until they end (the event loop keeps only weak references)."""
        return set()

    def _submit(self, call: steps.Call) -> asyncio.Future[Exchange]:
        return asyncio.ensure_future(self._transport.infer(call.request, call.timeout_s, call.patient))

    def _follow(self, pending: Pending, call: asyncio.Future[Exchange]) -> None:
        """Let a call that outlives its frame finish on its own; the router hears of its outcome."""
        self._background.add(call)
        call.add_done_callback(lambda c: self._late_answer(pending, c))

    def _late_answer(self, pending: Pending, call: asyncio.Future[Exchange]) -> None:
        self._background.discard(call)
        if call.cancelled():
            return
        exc = call.exception()
        if exc is None:
            self._router.late(pending, call.result())
        elif isinstance(exc, TransportError):
            self._router.late(pending, exc)

    async def close(self) -> None:
        for call in self._background:
            call.cancel()
        if self._key_task is not None:
            self._key_task.cancel()
        await self._transport.close()
        self._device.shutdown(wait=False, cancel_futures=True)
        self.local.close()  # a device model still syncing must not outlive the client (see LocalEngine.close)

    async def __aenter__(self) -> AsyncOffloadClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def outcome(call: asyncio.Future[Exchange], wait_s: float) -> steps.Event:
    """How `call` stands after waiting up to `wait_s` for it."""
    done, _ = await asyncio.wait({call}, timeout=wait_s)
    if not done:
        return steps.TimedOut()
    exc = call.exception()
    if isinstance(exc, TransportError):
        return steps.Failed(exc)
    if exc is not None:
        raise exc
    return steps.Answered(call.result())
