"""The one error type the serving core raises: a gRPC status and a message a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from offload_server.admission import Load


class ServiceError(Exception):
    """A request the server refuses, with the gRPC status to answer and a message a person can act on.

    `trailers`: gRPC trailing metadata to send with it (a refusal's `retry-after-ms`); `load`: how busy the
    server is, for a stream's error answer.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        trailers: tuple[tuple[str, str], ...] = (),
        load: Load | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = trailers
        self.load = load
