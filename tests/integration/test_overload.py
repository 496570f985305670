"""Overload through real streams: every frame gets a result or RESOURCE_EXHAUSTED, then the server serves on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_queue_server(models_dir: Path) -> Iterator[OffloadServer]:
    settings = Settings(grpc_port=0, http_port=0, models_dir=models_dir, models=["text-detector"], max_queue=2)
    with serve_in_thread(settings) as server:
        yield server


def loadgen(kind: str, target: str, frames: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.loadgen", kind, target, "--frames", str(frames), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_streams_offering_too_much_get_an_answer_for_every_frame(
    tiny_queue_server: OffloadServer, sample: tuple[list[np.ndarray], object], tmp_path: Path
) -> None:
    frames, _ = sample
    for i in range(4):
        (tmp_path / f"{i}.jpg").write_bytes(encode_jpeg(frames[i]))
    target = tiny_queue_server.grpc_target
    # What the server can do: two callers keep its queue full without overflowing it.
    capacity = loadgen("grpc-unary", target, tmp_path, "--concurrency", "2", "--duration", "2", "--warmup", "0.5")
    result = loadgen("overload", target, tmp_path, "--concurrency", "8", "--rate", "10", "--duration", "3")

    assert result["errors"] == 0
    assert result["sent"] == result["answered"] + result["rejected"]
    offered = result["sent"] / result["seconds"]
    assert offered >= 2 * capacity["fps"], (offered, capacity)  # an overload, or the test tests nothing
    # Refusing the excess, the server goes on computing at no less than half its capacity (the machine is
    # shared with the load generator) and refuses what it cannot compute instead of queueing it.
    answered_fps = result["answered"] / result["seconds"]
    assert answered_fps >= 0.5 * capacity["fps"], (answered_fps, capacity, result)
    assert result["rejected"] >= result["sent"] - 2 * capacity["fps"] * result["seconds"], (capacity, result)
    # A refusal is decided before decoding: it must not wait behind the frames being computed.
    assert result["max_reject_ms"] < 1000

    after = loadgen("grpc-unary", target, tmp_path, "--duration", "1", "--warmup", "0.2")
    assert after["answered"] > 0 and after["errors"] == 0
