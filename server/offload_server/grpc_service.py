"""The gRPC servicer: a thin adapter from the wire to `InferenceService`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from offload_client._proto import offload_pb2 as pb
from offload_client._proto import offload_pb2_grpc as pb_grpc
from offload_server.errors import ServiceError
from offload_server.inference import InferenceService


class OffloadServicer(pb_grpc.OffloadServicer):  # type: ignore[misc]  # generated base is untyped
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:  # noqa: N802
        try:
            return await self.service.infer(request, context.time_remaining())
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    async def InferStream(  # noqa: N802
        self, requests: AsyncIterator[pb.InferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InferResponse]:
        # Frames are served concurrently (they share batches) and answered as they finish:
        # a refused frame must come back at once, not behind the frames sent before it.
        answers: asyncio.Queue[pb.InferResponse | None] = asyncio.Queue()
        in_flight: set[asyncio.Task[None]] = set()

        async def answer(request: pb.InferRequest) -> None:
            answers.put_nowait(await self._answer(request))

        async def read_all() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(answer(request))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.gather(*in_flight)
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read_all())
        try:
            while (response := await answers.get()) is not None:
                yield response
            await reader  # re-raise what ended the request stream, if anything did
        finally:
            for task in (reader, *in_flight):
                task.cancel()

    async def _answer(self, request: pb.InferRequest) -> pb.InferResponse:
        """A bad or refused frame answers with `error` and the stream goes on: one frame must not end a video."""
        try:
            return await self.service.infer(request)
        except ServiceError as exc:
            return pb.InferResponse(
                frame_id=request.frame_id,
                model=request.model,
                error=pb.FrameError(code=exc.code.value[0], message=exc.message),
            )

    async def ListModels(  # noqa: N802
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return self.service.list_models()
