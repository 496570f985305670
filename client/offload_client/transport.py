"""The remote path behind a tiny interface, as httpx does it: clients never touch grpc objects.

`GrpcTransport` / `AsyncGrpcTransport` talk to a real server; `InMemoryTransport`
calls a Python function instead, for unit tests of the client and its policies.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import grpc

from offload_client.security import Security
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc

# Frames are small JPEGs, but raw frames and big photos must fit too.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # gRPC's default reconnect backoff grows to 120 s; after an outage we want the server back at once.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
    # A link that goes silent (a cut cable, a handover, `docker network disconnect`) sends no reset: without
    # pings the channel would keep a dead connection until a call times out. Pings every 2 s, 1 s to answer.
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class TransportError(Exception):
    """The remote path failed; `code` is the gRPC status name (e.g. "UNAVAILABLE").

    Example:
        >>> error = TransportError("RESOURCE_EXHAUSTED", "queue full")
        >>> error.code, str(error)
        ('RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED: queue full')
    """

    def __init__(
        self, code: str, message: str, retry_after_ms: float | None = None, server_wait_ms: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # A refusal's hints (trailing metadata of a server that has them): when to ask again, and the wait
        # the server predicted for a request arriving then (its load signal).
        self.retry_after_ms = retry_after_ms
        self.server_wait_ms = server_wait_ms


def late(waited_s: float) -> TransportError:
    """The error of a call that was not back in time: the device model answers instead."""
    return TransportError("DEADLINE_EXCEEDED", f"no answer within {waited_s * 1000:.0f} ms; the device model answered")


@dataclass(frozen=True)
class Exchange:
    """A reply and what it cost on the wire."""

    response: pb.InferResponse
    request_bytes: int
    response_bytes: int


class Transport(Protocol):
    """Sends one request; the future fails with `TransportError`. Waiting is the caller's choice (hedging).

    Implement it to reach a server some other way; `OffloadClient(transport=...)` takes any.

    Example:
        >>> OffloadClient(transport=InMemoryTransport(answer), policy="always-remote")  # doctest: +SKIP
    """

    def submit(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Future[Exchange]:
        """`patient`: wait (within the timeout) for a reconnecting channel instead of failing at once."""
        ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def infer(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Exchange: ...

    async def close(self) -> None: ...


def _error(exc: grpc.RpcError) -> TransportError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    trailers = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    return TransportError(
        code.name if code is not None else "UNKNOWN",
        details or "",
        retry_after_ms=_number(trailers.get("retry-after-ms")),
        server_wait_ms=_number(trailers.get("offload-predicted-wait-ms")),
    )


def _number(value: object) -> float | None:
    """A trailer's number (None: absent or not a number, as from an older server or a proxy)."""
    try:
        return float(value) if isinstance(value, (str, bytes)) else None
    except ValueError:
        return None


def client_metadata(security: Security) -> tuple[tuple[str, str], ...]:
    """Every call's metadata: the token, and this client's id (the server keeps each client's share of its
    queue by it; a random id per transport, so it says nothing of the phone or the person)."""
    return (*security.metadata(), ("offload-client", uuid.uuid4().hex[:16]))


class GrpcTransport:
    """Unary `Infer` calls over one gRPC channel (TLS and a token as `security` says)."""

    def __init__(self, target: str, channel: grpc.Channel | None = None, security: Security | None = None) -> None:
        self.target = target
        self.security = security or Security()
        if channel is None:
            channel = (
                grpc.secure_channel(target, self.security.channel_credentials(), options=CHANNEL_OPTIONS)
                if self.security.tls
                else grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
            )
        self.channel = channel
        self.stub = pb_grpc.OffloadStub(self.channel)
        self.metadata = client_metadata(self.security)

    def submit(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Future[Exchange]:
        out: Future[Exchange] = Future()
        call = self.stub.Infer.future(request, timeout=timeout_s, wait_for_ready=patient, metadata=self.metadata)

        def done(finished: grpc.Future) -> None:
            try:
                response = finished.result()
            except grpc.RpcError as exc:
                out.set_exception(_error(exc))
            except grpc.FutureCancelledError:
                out.set_exception(TransportError("CANCELLED", "the call was cancelled"))
            else:
                out.set_result(Exchange(response, request.ByteSize(), response.ByteSize()))

        call.add_done_callback(done)
        return out

    def close(self) -> None:
        self.channel.close()


class AsyncGrpcTransport:
    """The grpc.aio twin of `GrpcTransport`."""

    def __init__(self, target: str, security: Security | None = None) -> None:
        self.target = target
        self.security = security or Security()
        self.channel = (
            grpc.aio.secure_channel(target, self.security.channel_credentials(), options=CHANNEL_OPTIONS)
            if self.security.tls
            else grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        )
        self.stub = pb_grpc.OffloadStub(self.channel)
        self.metadata = client_metadata(self.security)

    async def infer(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Exchange:
        try:
            response = await self.stub.Infer(request, timeout=timeout_s, wait_for_ready=patient, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from None
        return Exchange(response, request.ByteSize(), response.ByteSize())

    async def close(self) -> None:
        await self.channel.close()


class InMemoryTransport:
    """Calls `handler(request)` in-process; counts what would have crossed the wire.

    Raise `TransportError` from the handler to emulate a failing server.

    Example:
        >>> from offload_core.proto import offload_pb2 as pb
        >>> fake = InMemoryTransport(lambda request: pb.InferResponse(model=request.model))
        >>> fake.submit(pb.InferRequest(model="m"), timeout_s=1.0).result().response.model, fake.requests
        ('m', 1)
    """

    def __init__(self, handler: Callable[[pb.InferRequest], pb.InferResponse]) -> None:
        self.handler = handler
        self.requests = 0
        self.bytes_sent = 0

    def submit(self, request: pb.InferRequest, timeout_s: float, patient: bool = False) -> Future[Exchange]:
        self.requests += 1
        self.bytes_sent += request.ByteSize()
        out: Future[Exchange] = Future()
        try:
            response = self.handler(request)
        except TransportError as exc:
            out.set_exception(exc)
        else:
            out.set_result(Exchange(response, request.ByteSize(), response.ByteSize()))
        return out

    def close(self) -> None:
        pass
