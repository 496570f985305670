from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offload_client.sample import load_ground_truth, render_frames, write_sample_video
from offload_client.video import read_frames

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_not_stale() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_messages_pickle() -> None:
    """Ray Serve pickles requests and responses between its proxy and replicas: the classes must import back."""
    from offload_client._proto import offload_pb2 as pb
    from offload_server._proto import grpc_service_pb2 as oip

    for message in (pb.InferRequest(model="text-spotter", frame_id=7), oip.ModelInferRequest(model_name="x", id="7")):
        assert pickle.loads(pickle.dumps(message)) == message


def test_sample_is_deterministic_and_varied() -> None:
    a, truth_a = render_frames(seed=3, frames=60)
    b, truth_b = render_frames(seed=3, frames=60)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)) and truth_a == truth_b
    c, _ = render_frames(seed=4, frames=60)
    assert not np.array_equal(a[10], c[10])
    counts = [len(f.words) for f in truth_a.frames]
    assert max(counts) >= 2
    heights = [abs(w.quad[3][1] - w.quad[0][1]) for f in truth_a.frames for w in f.words]
    assert min(heights) < 0.6 * max(heights)  # small hard words and big easy ones


def test_sample_has_quiet_stretches_without_text() -> None:
    _, truth = render_frames(seed=7, frames=100)
    assert any(not f.words for f in truth.frames)


def test_sample_video_reads_back_with_opencv(tmp_path: Path) -> None:
    video, gt = write_sample_video(tmp_path, seed=1, frames=12)
    frames = list(read_frames(video))
    truth = load_ground_truth(gt)
    assert len(frames) == len(truth.frames) == 12
    assert frames[0].shape == (truth.height, truth.width, 3)
