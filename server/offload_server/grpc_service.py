"""The gRPC servicer: a thin adapter from the wire to `InferenceService`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from offload_client._proto import offload_pb2 as pb
from offload_client._proto import offload_pb2_grpc as pb_grpc
from offload_server.inference import InferenceService, ServiceError


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
        # A bad frame answers with `error` and the stream goes on: one frame must not end a video.
        async for request in requests:
            try:
                yield await self.service.infer(request)
            except ServiceError as exc:
                yield pb.InferResponse(
                    frame_id=request.frame_id,
                    model=request.model,
                    error=pb.FrameError(code=exc.code.value[0], message=exc.message),
                )

    async def ListModels(  # noqa: N802
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return self.service.list_models()
