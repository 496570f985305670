"""The remote path behind a tiny interface, as httpx does it: clients never touch grpc objects.

`GrpcTransport` / `AsyncGrpcTransport` talk to a real server; `InMemoryTransport`
calls a Python function instead, for unit tests of the client and its policies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from offload_client._proto import offload_pb2 as pb
from offload_client._proto import offload_pb2_grpc as pb_grpc

# Frames are small JPEGs, but raw frames and big photos must fit too.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class TransportError(Exception):
    """The remote path failed; `code` is the gRPC status name (e.g. "UNAVAILABLE")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Exchange:
    """A reply and what it cost on the wire."""

    response: pb.InferResponse
    request_bytes: int
    response_bytes: int


class Transport(Protocol):
    def infer(self, request: pb.InferRequest, timeout_s: float) -> Exchange: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def infer(self, request: pb.InferRequest, timeout_s: float) -> Exchange: ...

    async def close(self) -> None: ...


def _error(exc: grpc.RpcError) -> TransportError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return TransportError(code.name if code is not None else "UNKNOWN", details or "")


class GrpcTransport:
    """Unary `Infer` calls over one gRPC channel."""

    def __init__(self, target: str, channel: grpc.Channel | None = None) -> None:
        self.target = target
        self.channel = channel or grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.OffloadStub(self.channel)

    def infer(self, request: pb.InferRequest, timeout_s: float) -> Exchange:
        try:
            response = self.stub.Infer(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return Exchange(response, request.ByteSize(), response.ByteSize())

    def list_models(self, timeout_s: float = 5.0) -> pb.ListModelsResponse:
        try:
            response: pb.ListModelsResponse = self.stub.ListModels(pb.ListModelsRequest(), timeout=timeout_s)
            return response
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def close(self) -> None:
        self.channel.close()


class AsyncGrpcTransport:
    """The grpc.aio twin of `GrpcTransport`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.OffloadStub(self.channel)

    async def infer(self, request: pb.InferRequest, timeout_s: float) -> Exchange:
        try:
            response = await self.stub.Infer(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None
        return Exchange(response, request.ByteSize(), response.ByteSize())

    async def close(self) -> None:
        await self.channel.close()


class InMemoryTransport:
    """Calls `handler(request)` in-process; counts what would have crossed the wire.

    Raise `TransportError` from the handler to emulate a failing server.
    """

    def __init__(self, handler: Callable[[pb.InferRequest], pb.InferResponse]) -> None:
        self.handler = handler
        self.requests = 0
        self.bytes_sent = 0

    def infer(self, request: pb.InferRequest, timeout_s: float) -> Exchange:
        self.requests += 1
        self.bytes_sent += request.ByteSize()
        response = self.handler(request)
        return Exchange(response, request.ByteSize(), response.ByteSize())

    def close(self) -> None:
        pass
