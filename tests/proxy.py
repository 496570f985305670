"""A gRPC proxy in front of the real server that keeps every request it forwards: what reached the wire."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc

from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc


class RecordingProxy(pb_grpc.OffloadServicer):  # type: ignore[misc]  # generated base
    """Forwards Infer to `upstream` and keeps each request. `old_server`: answers as a server from before
    region requests would (no `accepts`; a request without an image is refused)."""

    def __init__(self, upstream: str, old_server: bool = False) -> None:
        self.stub = pb_grpc.OffloadStub(grpc.insecure_channel(upstream))
        self.requests: list[pb.InferRequest] = []
        self.old_server = old_server

    @property
    def images(self) -> list[bytes]:
        """Every encoded image that reached the server: whole frames and regions' crops."""
        return [r.encoded.data for r in self.requests if r.encoded.data] + [
            region.image.data for r in self.requests for region in r.regions
        ]

    def Infer(self, request: pb.InferRequest, context: grpc.ServicerContext) -> pb.InferResponse:  # noqa: N802
        self.requests.append(request)
        if self.old_server and request.WhichOneof("image") is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request has no image; set `encoded` or `raw`")
        response = self.stub.Infer(request, timeout=context.time_remaining())
        if self.old_server:
            del response.accepts[:]
        return response


@contextmanager
def recording_proxy(upstream: str, old_server: bool = False) -> Iterator[tuple[str, RecordingProxy]]:
    """(its address, the proxy), for the length of the block."""
    recorder = RecordingProxy(upstream, old_server)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_OffloadServicer_to_server(recorder, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        grpc_server.stop(None)
