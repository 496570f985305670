"""The gRPC servicer: a thin adapter from the wire to `InferenceService`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.message import Message

from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server.errors import ServiceError
from offload_server.inference import InferenceService, load_to_pb
from offload_server.streams import answer_concurrently


class Malformed:
    """What a request's bytes became when they were no message at all (see `tolerant`)."""

    def __init__(self, error: Exception, message_type: type[Message]) -> None:
        name, proto = message_type.DESCRIPTOR.full_name, message_type.DESCRIPTOR.file.name
        self.message = f"the request is not a valid {name} message ({error}); send one built from {proto}"


def tolerant(message_type: type[Message]) -> Callable[[bytes], Message | Malformed]:
    """A deserializer that hands bad bytes to the method instead of raising.

    gRPC answers INTERNAL when a deserializer raises; a request that is not a message is the
    caller's mistake, and the method answers it INVALID_ARGUMENT.
    """

    def parse_or_malformed(data: bytes) -> Message | Malformed:
        try:
            return message_type.FromString(data)
        except Exception as exc:
            return Malformed(exc, message_type)

    return parse_or_malformed


def add_to_server(servicer: OffloadServicer, server: grpc.aio.Server) -> None:
    """Register `offload.v1.Offload` as the generated code does, but with tolerant deserializers."""
    infer, reply = tolerant(pb.InferRequest), pb.InferResponse.SerializeToString
    handlers = {
        "Infer": grpc.unary_unary_rpc_method_handler(servicer.Infer, infer, reply),
        "InferStream": grpc.stream_stream_rpc_method_handler(servicer.InferStream, infer, reply),
        "ListModels": grpc.unary_unary_rpc_method_handler(
            servicer.ListModels, tolerant(pb.ListModelsRequest), pb.ListModelsResponse.SerializeToString
        ),
    }
    name = pb.DESCRIPTOR.services_by_name["Offload"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
    server.add_registered_method_handlers(name, handlers)


CLIENT_HEADER = "offload-client"


def client_of(context: grpc.aio.ServicerContext | None) -> str:
    """Who is calling, for its share of the queue: the SDK's `offload-client` header ("": a caller without
    it, such as a load generator or tritonclient, whose streams share one connection; not capped; or a
    call with no gRPC context, as Ray Serve's proxy hands a stream over)."""
    if context is None:
        return ""
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_HEADER and isinstance(value, str):
            return value[:64]
    return ""


class OffloadServicer(pb_grpc.OffloadServicer):  # type: ignore[misc]  # generated base is untyped
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def Infer(  # noqa: N802
        self, request: pb.InferRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> pb.InferResponse:
        try:
            if isinstance(request, Malformed):
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await self.service.infer(request, context.time_remaining(), client_of(context))
        except ServiceError as exc:
            await context.abort(exc.code, exc.message, exc.trailers)  # a refusal's retry hint and load
            raise  # unreachable: abort raises

    async def InferStream(  # noqa: N802
        self, requests: AsyncIterator[pb.InferRequest | Malformed], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.InferResponse]:
        client = client_of(context)

        async def answer(request: pb.InferRequest | Malformed) -> pb.InferResponse:
            return await self._answer(request, client)

        async for response in answer_concurrently(requests, answer):
            yield response

    async def _answer(self, request: pb.InferRequest | Malformed, client: str = "") -> pb.InferResponse:
        """A bad or refused frame answers with `error` and the stream goes on: one frame must not end a video."""
        if isinstance(request, Malformed):
            code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            return pb.InferResponse(error=pb.FrameError(code=code, message=request.message))
        try:
            return await self.service.infer(request, client=client)
        except ServiceError as exc:
            return pb.InferResponse(
                frame_id=request.frame_id,
                model=request.model,
                error=pb.FrameError(code=exc.code.value[0], message=exc.message),
                load=load_to_pb(exc.load) if exc.load is not None else None,
            )

    async def ListModels(  # noqa: N802
        self, request: pb.ListModelsRequest | Malformed, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return self.service.list_models()
