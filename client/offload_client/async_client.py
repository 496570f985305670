"""`AsyncOffloadClient`: the asyncio twin of `OffloadClient`; the device model runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from offload_client._client_base import ClientBase
from offload_client.policy import Policy
from offload_client.privacy import Privacy
from offload_client.router import Pending
from offload_client.security import Security
from offload_client.transport import AsyncGrpcTransport, AsyncTransport, Exchange, TransportError, late
from offload_client.types import FrameResult


class AsyncOffloadClient(ClientBase):
    """Same arguments and behaviour as `OffloadClient`, for asyncio apps.

    Example:
        >>> async with AsyncOffloadClient("localhost:50051", policy="adaptive") as oc:  # doctest: +SKIP
        ...     result = await oc.infer(frame)
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        model: str = "text-spotter",
        policy: str | Policy = "adaptive",
        privacy: str | Privacy = Privacy.ALLOW,
        deadline_ms: float = 1000.0,
        models_dir: Path | str | None = None,
        local_threads: int = 1,
        jpeg_quality: int = 90,
        device_slowdown: float = 1.0,
        sync_models_from: str | None = None,
        device_providers: list[str] | None = None,
        tls: bool = False,
        ca_file: Path | str | None = None,
        client_cert: Path | str | None = None,
        client_key: Path | str | None = None,
        token: str | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        super().__init__(
            model,
            policy,
            privacy,
            deadline_ms,
            models_dir,
            local_threads,
            jpeg_quality,
            device_slowdown,
            sync_models_from,
            device_providers,
            Security.of(tls, ca_file, client_cert, client_key, token),
        )
        self._transport: AsyncTransport = transport or AsyncGrpcTransport(target, security=self.security)
        self._background: set[asyncio.Future[Exchange]] = set()  # hedged and shadow calls still running

    async def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame; see `OffloadClient.infer`."""
        self._device_state()
        router = self._router
        pending = router.begin(frame)
        failure: TransportError | None = None
        if pending.request is not None:
            call = asyncio.ensure_future(self._transport.infer(pending.request, pending.timeout_s, pending.patient))
            if pending.shadow:
                self._in_background(pending, call)
            else:
                try:
                    return router.succeeded(pending, await asyncio.wait_for(asyncio.shield(call), pending.hedge_s))
                except TransportError as exc:
                    failure = exc
                except TimeoutError:
                    if not router.device_missing:
                        return await self._race(pending, call, frame)
                    call.cancel()
                    failure = late(pending.hedge_s)
                router.failed(pending, failure)
        if router.device_missing:
            return router.unanswered(pending, failure)
        prediction, stages = await asyncio.wrap_future(
            self._device.submit(self.local.run, frame, None, pending.decision.device_variant)
        )
        return router.finish_local(pending, prediction, stages, self.local.variant, failure)

    async def _race(self, pending: Pending, call: asyncio.Future[Exchange], frame: np.ndarray) -> FrameResult:
        """Past the hedge: the device model runs, and the first of it and the remote answer serves the frame."""
        stop = threading.Event()
        local = asyncio.wrap_future(self._device.submit(self.local.run, frame, stop, pending.decision.device_variant))
        contenders: set[asyncio.Future[Any]] = {call, local}
        await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
        if local.done() and not call.done():  # the more accurate answer may still come in time
            await asyncio.wait({call}, timeout=self._router.remote_time_left_s(pending))
        answered = call.done() and not call.cancelled() and call.exception() is None
        error = call.exception() if call.done() and not call.cancelled() else None
        if answered and (not local.done() or pending.decision.prefer_remote):
            stop.set()
            device = local.result() if local.done() else None
            return self._router.succeeded(pending, call.result(), raced=True, device=device)
        failure = self._router.lost_race(pending, error)
        if error is None:  # still running, or answered just as the device finished: its timing still teaches
            self._in_background(pending, call)
        prediction, stages = await local
        return self._router.finish_local(pending, prediction, stages, self.local.variant, failure)

    def _in_background(self, pending: Pending, call: asyncio.Future[Exchange]) -> None:
        """Let a hedged or shadow call finish on its own; its outcome still teaches the estimators."""
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
        await self._transport.close()
        self._device.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> AsyncOffloadClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
