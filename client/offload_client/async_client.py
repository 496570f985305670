"""`AsyncOffloadClient`: the asyncio twin of `OffloadClient`; the device model runs off the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType

import numpy as np

from offload_client._client_base import ClientBase
from offload_client.policy import Policy
from offload_client.privacy import Privacy
from offload_client.transport import AsyncGrpcTransport, AsyncTransport, TransportError
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
        transport: AsyncTransport | None = None,
    ) -> None:
        super().__init__(model, policy, privacy, deadline_ms, models_dir, local_threads, jpeg_quality)
        self._transport: AsyncTransport = transport or AsyncGrpcTransport(target)

    async def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame; see `OffloadClient.infer`."""
        router = self._router
        pending = router.begin(frame)
        failure: TransportError | None = None
        if pending.request is not None:
            try:
                exchange = await self._transport.infer(pending.request, pending.budget_s)
            except TransportError as exc:
                failure = exc
                router.failed(pending, exc)
            else:
                return router.succeeded(pending, exchange)
        prediction, stages = await asyncio.to_thread(self.local.run, frame)
        return router.finish_local(pending, prediction, stages, self.local.variant, failure)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncOffloadClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
