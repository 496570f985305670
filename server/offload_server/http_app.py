"""The HTTP control plane (FastAPI): health, readiness, the model list and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from offload_core.engine.repository import ModelFileError, sha256_of
from offload_core.model_transfer import HAVE_HEADER, PATCH_FROM_HEADER, PATCH_MEDIA_TYPE, ZSTD
from offload_core.wire import SHA256_HEADER
from offload_server import __version__
from offload_server.auth import REFUSAL, Tokens
from offload_server.inference import InferenceService
from offload_server.model_downloads import Downloads


def create_app(service: InferenceService, tokens: Tokens | None = None, metrics_need_token: bool = False) -> FastAPI:
    app = FastAPI(title="offload-server", version=__version__)
    downloads = Downloads(service.repository.root)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """With tokens configured, /v1/* (and /metrics if asked) need `Authorization: Bearer`; health stays open."""
        path = request.url.path
        guarded = path.startswith("/v1/") or (metrics_need_token and path == "/metrics")
        if tokens is not None and guarded and not tokens.allows(request.headers.get("authorization")):
            service.metrics.refused.labels(protocol="http").inc()
            return JSONResponse({"detail": REFUSAL}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

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

    @app.get("/v1/models/{name}/model.yaml")
    def model_spec(name: str) -> Response:
        """The model's `model.yaml`, so that a client with an empty cache can pull its device model."""
        repo = service.repository
        if name not in repo.specs:
            raise HTTPException(404, f"unknown model {name!r}; the repository has {sorted(repo.specs)}")
        return FileResponse(repo.root / name / "model.yaml", media_type="application/yaml")

    @app.get("/v1/models/{name}/variants/{variant}")
    def variant_file(name: str, variant: str, request: Request) -> Response:
        """The variant's weight file, for clients to sync their device model.

        The ETag is the file's sha256 (also sent as X-Offload-Sha256, so a client verifies
        what it received); `If-None-Match` with it answers 304 and sends nothing. A client that
        names the file it holds (X-Offload-Have: its sha256) gets a patch from it when the server
        has that file too (X-Offload-Patch-From says so); `Accept-Encoding: zstd` gets the file
        compressed; any other client, the plain file, as before.
        """
        repo = service.repository
        if name not in repo.specs:
            raise HTTPException(404, f"unknown model {name!r}; the repository has {sorted(repo.specs)}")
        spec = repo.spec(name)
        chosen = next((v for v in spec.variants if v.name == variant), None)
        if chosen is None:
            known = [v.name for v in spec.variants]
            raise HTTPException(404, f"model {name!r} has no variant {variant!r}; it has {known}")
        if chosen.file is None:
            raise HTTPException(404, f"{name}/{variant} is a pipeline of {chosen.stages}; fetch each stage's variant")
        try:
            path = repo.file_of(spec, chosen)
        except ModelFileError as exc:
            raise HTTPException(503, str(exc)) from None
        digest = chosen.sha256 or sha256_of(path)
        etag = f'"{digest}"'
        headers = {"ETag": etag, SHA256_HEADER: digest, "Vary": "Accept-Encoding, " + HAVE_HEADER}
        if request.headers.get("if-none-match", "").strip() in (etag, digest):
            return Response(status_code=304, headers=headers)
        have = request.headers.get(HAVE_HEADER, "").strip()
        old = downloads.held_file(name, have) if have and have != digest else None
        patch = downloads.patch(name, old, have, path, digest) if old is not None else None
        if patch is not None:  # the client holds an earlier file: send what changed
            return FileResponse(patch, media_type=PATCH_MEDIA_TYPE, headers={**headers, PATCH_FROM_HEADER: have})
        if ZSTD in [token.split(";")[0].strip() for token in request.headers.get("accept-encoding", "").split(",")]:
            body = downloads.compressed(name, path, digest)
            return FileResponse(
                body, media_type="application/octet-stream", headers={**headers, "Content-Encoding": ZSTD}
            )
        return FileResponse(path, media_type="application/octet-stream", filename=path.name, headers=headers)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
