from __future__ import annotations

import re

import grpc
import httpx
import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer

pytestmark = pytest.mark.integration


def sample_value(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of /metrics' text (0 when the series does not exist yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if m := re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line):
            have = ",".join(sorted((m.group(1) or "").split(","))) if m.group(1) else ""
            if have == wanted:
                return float(m.group(2))
    return 0.0


def test_health_ready_models_and_metrics(server: OffloadServer) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        models = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        assert models["text-spotter"]["default_variant"] == "server"

        before = http.get("/metrics").text
        with grpc.insecure_channel(server.grpc_target) as channel:
            frame = encode_jpeg(np.full((64, 96, 3), 255, np.uint8))
            pb_grpc.OffloadStub(channel).Infer(
                pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=frame))
            )
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        ok = {"model": "text-spotter", "status": "OK"}
        # One request answered: its status counted once, its latency observed once.
        assert (
            sample_value(metrics.text, "offload_requests_total", **ok)
            == sample_value(before, "offload_requests_total", **ok) + 1
        )
        latency = {"model": "text-spotter"}
        assert (
            sample_value(metrics.text, "offload_request_latency_seconds_count", **latency)
            == sample_value(before, "offload_request_latency_seconds_count", **latency) + 1
        )
