"""`AsyncOffloadClient`: the asyncio twin of `OffloadClient`; the device model runs off the event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import TracebackType

import numpy as np

from offload_client._client_base import ClientBase
from offload_client.policy import Policy
from offload_client.privacy import Privacy
from offload_client.router import elapsed_ms
from offload_client.transport import AsyncGrpcTransport, AsyncTransport, TransportError
from offload_client.types import FrameResult, Where


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
        transport: AsyncTransport | None = None,
    ) -> None:
        super().__init__(model, policy, privacy, deadline_ms, models_dir, local_threads, jpeg_quality)
        self._transport: AsyncTransport = transport or AsyncGrpcTransport(target)

    async def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame; see `OffloadClient.infer`."""
        started = time.perf_counter()
        router = self._router
        frame_id, decision = router.decide()
        failure: TransportError | None = None
        sent = 0
        if decision.where == Where.REMOTE:
            request, encode_ms = router.request(frame_id, frame)
            budget_s = max(0.001, (router.deadline_ms - elapsed_ms(started)) / 1000.0)
            try:
                exchange = await self._transport.infer(request, budget_s)
            except TransportError as exc:
                failure, sent = exc, request.ByteSize()
                router.remote_failed(exc, elapsed_ms(started))
            else:
                result = router.remote_result(frame_id, decision, exchange, encode_ms, started)
                router.observe(result)
                return result
        prediction, stages = await asyncio.to_thread(self.local.run, frame)
        result = router.local_result(frame_id, decision, prediction, stages, self.local.variant, started, failure, sent)
        router.observe(result)
        return result

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncOffloadClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
