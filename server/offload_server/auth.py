"""Bearer tokens: who may call the server. One check, used by the gRPC interceptor and the HTTP app.

The tokens file holds one token per line, or its SHA-256 in hex (so the file on the server need not
hold the secret itself); blank lines and `#` comments are ignored. A presented token is hashed and
compared with every known digest in constant time: how long a refusal takes says nothing of how
close a guess was.

Example:
    >>> tokens = Tokens.from_lines(["s3cret"])
    >>> tokens.allows("Bearer s3cret"), tokens.allows("Bearer guess"), tokens.allows(None)
    (True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

# Health checks stay open: load balancers and orchestrators probe them without credentials.
OPEN_GRPC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
)
BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)
HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The set of accepted tokens, kept as SHA-256 digests."""

    def __init__(self, digests: Iterable[bytes]) -> None:
        self.digests = list(digests)
        if not self.digests:
            raise ValueError("the tokens file names no token; put one token (or its sha256) per line")

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Tokens:
        found = []
        for raw in lines:
            line = raw.split("#", 1)[0].strip()
            if line:
                found.append(bytes.fromhex(line) if HEX_DIGEST.match(line) else digest(line))
        return cls(found)

    @classmethod
    def from_file(cls, path: Path) -> Tokens:
        try:
            return cls.from_lines(path.read_text().splitlines())
        except OSError as exc:
            raise ValueError(f"cannot read the tokens file {path}: {exc.strerror}") from None

    def allows(self, authorization: str | None) -> bool:
        """Whether an `authorization` header value ("Bearer <token>") names a known token."""
        match = BEARER.match(authorization or "")
        presented = digest(match.group(1) if match else "")
        # Every digest is compared, whatever matched: the time taken does not depend on which, if any.
        results = [hmac.compare_digest(presented, known) for known in self.digests]
        return match is not None and any(results)


REFUSAL = "missing or unknown bearer token: send metadata 'authorization: Bearer <token>' (client: token=...)"


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Answers UNAUTHENTICATED to every call without a known token, before any handler (or model) runs."""

    def __init__(self, tokens: Tokens, on_refusal: Callable[[], None] = lambda: None) -> None:
        self.tokens = tokens
        self.on_refusal = on_refusal

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_GRPC_PREFIXES):
            return handler
        metadata = dict(details.invocation_metadata or ())
        if self.tokens.allows(metadata.get("authorization")):
            return handler
        self.on_refusal()
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only aborts with UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)

    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(streaming_in, streaming_out)]
    return make(
        refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
