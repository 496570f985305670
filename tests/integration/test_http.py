from __future__ import annotations

import httpx
import pytest

from offload_server import OffloadServer

pytestmark = pytest.mark.integration


def test_health_ready_models_and_metrics(server: OffloadServer) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert models["text-spotter"]["default_variant"] == "server"
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "offload_requests_total" in metrics.text or "offload_in_flight_requests" in metrics.text
        assert "offload_request_latency_seconds" in metrics.text
