"""The HTTP control plane (FastAPI): health, readiness, the model list and Prometheus metrics."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from offload_server.inference import InferenceService


def create_app(service: InferenceService) -> FastAPI:
    app = FastAPI(title="offload-server", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready only once every served model is loaded and warmed up."""
        if service.ready:
            return JSONResponse({"status": "ready", "models": service.names})
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/v1/models")
    def models() -> dict[str, object]:
        """The served models, their variants and checksums (the same data as gRPC ListModels)."""
        return MessageToDict(service.list_models(), preserving_proto_field_name=True)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
