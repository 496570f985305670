"""Fuzzed requests over real gRPC (a few hundred here; `make bench-faults` sends thousands)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bench.fuzz import DOCUMENTED, fuzz
from offload_client import OffloadClient, Where
from offload_server import OffloadServer
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration
CASES = 300


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_every_fuzzed_request_gets_a_documented_status_and_the_server_lives_on(
    server: OffloadServer, sample: tuple[list[np.ndarray], GroundTruth]
) -> None:
    before = rss_mb()
    report = fuzz(server.grpc_target, CASES)
    assert report.cases == CASES
    assert set(report.statuses) <= DOCUMENTED, report.undocumented
    assert report.statuses["INVALID_ARGUMENT"] > CASES / 4 and report.statuses["NOT_FOUND"] > 0, report.statuses
    # Afterwards: ready, and a good frame is read as before.
    assert httpx.get(f"{server.http_url}/readyz", timeout=10).status_code == 200
    # Measured before the client below loads its own device model (run alone, that is most of the growth).
    assert rss_mb() - before < 200, (before, rss_mb())
    frames, truth = sample
    i = next(i for i, t in enumerate(truth.frames) if t.words)
    with OffloadClient(server.grpc_target, policy="always-remote") as client:
        result = client.infer(frames[i])
    assert result.where == Where.REMOTE and set(result.words) & {w.text for w in truth.frames[i].words}
