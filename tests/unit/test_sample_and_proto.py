from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from offload_tools.sample import SAMPLE_FRAMES, SAMPLE_SEED, load_ground_truth, render_frames, write_sample_video
from offload_tools.video import read_frames

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_not_stale() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_messages_pickle() -> None:
    """Ray Serve pickles requests and responses between its proxy and replicas: the classes must import back."""
    from offload_core.proto import offload_pb2 as pb
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


def test_real_style_is_deterministic_has_small_words_and_quiet_frames() -> None:
    a, _ = render_frames(seed=3, frames=20, style="real")
    b, _ = render_frames(seed=3, frames=20, style="real")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    a, truth = render_frames(seed=SAMPLE_SEED, frames=SAMPLE_FRAMES, style="real")  # what `offload run` shows
    assert a[0].shape == (480, 640, 3) and truth.style == "real"
    heights = [np.linalg.norm(np.subtract(w.quad[3], w.quad[0])) for f in truth.frames for w in f.words]
    assert min(heights) < 14 and max(heights) > 30  # words as small as 8 px capitals, and large ones
    assert any(not f.words for f in truth.frames)
    # Photographs, not flat colour: the backdrop's texture is a real picture's.
    assert float(np.std(cv2.Laplacian(cv2.cvtColor(a[0], cv2.COLOR_BGR2GRAY), cv2.CV_32F))) > 5


def test_real_style_reads_photographs_from_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (9, 9), 0)
    cv2.imwrite(str(tmp_path / "wall.png"), photo)
    cv2.imwrite(str(tmp_path / "tiny.png"), photo[:100, :100])  # under 256 px a side: skipped
    monkeypatch.setenv("OFFLOAD_PHOTOS", str(tmp_path))
    frames, truth = render_frames(seed=1, frames=5, width=320, height=240, style="real")
    assert frames[0].shape == (240, 320, 3) and len(truth.frames) == 5
    monkeypatch.setenv("OFFLOAD_PHOTOS", str(tmp_path / "nothing-here"))
    with pytest.raises(RuntimeError, match="no photographs"):
        render_frames(seed=1, frames=5, style="real")
