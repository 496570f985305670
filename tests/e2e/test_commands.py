"""Whole command-line flows: `offload run` over the sample video, and `offload-server` draining on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from offload_client._proto import offload_pb2 as pb
from offload_client._proto import offload_pb2_grpc as pb_grpc
from offload_client.engine.image import encode_jpeg
from offload_client.telemetry import read_telemetry
from offload_server import OffloadServer

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def test_offload_run_on_the_sample_writes_telemetry_summary_and_plot(server: OffloadServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [str(BIN / "offload"), "run", "--sample", "--frames", "14", "--server", server.grpc_target, "--out", str(out)]
    cmd += ["--device-slowdown", "3"]  # a phone slower than the server, so adaptive sends frames
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "word acc" in done.stdout
    records = read_telemetry(out / "telemetry.jsonl")
    assert [r.frame_id for r in records] == list(range(14))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 14 and summary["local"] + summary["remote"] == 14
    assert summary["local"] > 0 and summary["remote"] > 0
    assert 0.5 <= summary["word_accuracy"] <= 1.0
    assert (out / "latency.png").stat().st_size > 1000


def test_server_drains_in_flight_requests_on_sigterm(models_dir: Path) -> None:
    cmd = [str(BIN / "offload-server"), "--grpc-port", "0", "--http-port", "0", "--model", "text-spotter",
           "--models-dir", str(models_dir)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        target = None
        for line in proc.stdout:
            if m := re.search(r"ready grpc=(\S+)", line):
                target = m.group(1)
                break
        assert target, "server never printed its ready line"
        stub = pb_grpc.OffloadStub(grpc.insecure_channel(target))
        frame = np.full((720, 1280, 3), 200, np.uint8)
        request = pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=encode_jpeg(frame)))
        stub.Infer(request, timeout=30)  # connected and warm
        replies: list[object] = []
        calls = [threading.Thread(target=lambda: replies.append(stub.Infer(request, timeout=30))) for _ in range(3)]
        for t in calls:
            t.start()
        time.sleep(0.5)  # let the three calls reach the server; together they take longer than that
        proc.send_signal(signal.SIGTERM)
        for t in calls:
            t.join(timeout=60)
        assert proc.wait(timeout=60) == 0
        # Requests already accepted when SIGTERM arrived are answered, not dropped.
        assert len(replies) == 3 and all(isinstance(r, pb.InferResponse) for r in replies)
    finally:
        if proc.poll() is None:
            proc.kill()
