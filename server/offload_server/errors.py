"""The one error type the serving core raises: a gRPC status and a message a person can act on."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A request the server refuses, with the gRPC status to answer and a message a person can act on."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
