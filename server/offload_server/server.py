"""One process, two ports: the gRPC inference server and the HTTP control plane.

`OffloadServer` starts both on one event loop (port 0 picks free ports, as the
tests do), loads and warms the models, and drains in-flight work on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator

import grpc
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from offload_core.proto import offload_pb2 as pb
from offload_server import oip
from offload_server.auth import TokenInterceptor, Tokens
from offload_server.config import Settings
from offload_server.grpc_service import OffloadServicer, add_to_server
from offload_server.http_app import create_app
from offload_server.inference import InferenceService
from offload_server.metrics import Metrics

log = logging.getLogger("offload_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Offload"].full_name


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: `main` owns SIGTERM and drains gRPC too."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_credentials(s: Settings) -> grpc.ServerCredentials:
    """TLS for the gRPC port; with a client CA, a client certificate it signed is required (mTLS)."""
    assert s.tls_cert is not None and s.tls_key is not None
    client_ca = s.tls_client_ca.read_bytes() if s.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(s.tls_key.read_bytes(), s.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class OffloadServer:
    """Example:
    >>> server = OffloadServer(Settings(grpc_port=0, http_port=0))  # doctest: +SKIP
    >>> await server.start(); print(server.grpc_target)              # doctest: +SKIP
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.service = InferenceService(settings, self.metrics)
        self.health = health_aio.HealthServicer()
        self.grpc_server: grpc.aio.Server | None = None
        self.http_server: _QuietUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.grpc_port = 0
        self.http_port = 0

    @property
    def grpc_target(self) -> str:
        return f"{self.settings.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{self.settings.host}:{self.http_port}"

    async def start(self) -> None:
        """Bind both ports, then load and warm the models; /readyz and gRPC health turn ready after."""
        s = self.settings
        limits = [
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            # Clients ping every 2 s to find dead links (transport.CHANNEL_OPTIONS); by default a server
            # takes pings more often than every 5 min as abuse and drops the connection.
            ("grpc.keepalive_permit_without_calls", 1),
            # gRPC shares a port with another process by default (SO_REUSEPORT): a second server on a
            # taken port would start "fine" and get half the calls. Refuse instead.
            ("grpc.so_reuseport", 0),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ]
        self.tokens = Tokens.from_file(s.auth_tokens_file) if s.auth_tokens_file else None
        refused = self.metrics.refused.labels(protocol="grpc").inc
        interceptors = [TokenInterceptor(self.tokens, refused)] if self.tokens else []
        self.grpc_server = grpc.aio.server(options=limits, interceptors=interceptors)
        add_to_server(OffloadServicer(self.service), self.grpc_server)
        # The Open Inference Protocol (KServe v2, with Triton's stream) on the same port, the same models.
        oip.add_to_server(oip.OpenInferenceServicer(self.service), self.grpc_server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        names = (
            SERVICE_NAME,
            oip.SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, self.grpc_server)
        address = f"{s.host}:{s.grpc_port}"
        if s.tls:
            self.grpc_port = self.grpc_server.add_secure_port(address, server_credentials(s))
        else:
            self.grpc_port = self.grpc_server.add_insecure_port(address)
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC to {s.host}:{s.grpc_port}")
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.grpc_server.start()

        sock = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((s.host, s.http_port))
        self.http_port = sock.getsockname()[1]
        app = create_app(self.service, self.tokens, s.metrics_need_token)  # counts its refusals in service.metrics
        tls: dict[str, object] = {}
        if s.tls:
            tls = {"ssl_certfile": str(s.tls_cert), "ssl_keyfile": str(s.tls_key)}
            if s.tls_client_ca:
                tls.update(ssl_ca_certs=str(s.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", **tls)  # type: ignore[arg-type]
        self.http_server = _QuietUvicorn(config)
        self._http_task = asyncio.create_task(self.http_server.serve(sockets=[sock]))
        while not self.http_server.started:
            if self._http_task.done():
                self._http_task.result()
            await asyncio.sleep(0.01)
        log.info("gRPC on %s, HTTP on %s; loading models", self.grpc_target, self.http_url)

        await asyncio.to_thread(self.service.load)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("ready: %s", ", ".join(self.service.names))

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new work, let in-flight requests finish (up to the grace period), then close."""
        grace = self.settings.drain_seconds if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace)
        if self.http_server is not None and self._http_task is not None:
            self.http_server.should_exit = True
            await self._http_task
        await self.service.stop_batchers()
        self.service.close()
