"""Privacy mode `redact`: what reaches the server has no face in it, and the words are still read.

A real photograph of a face (scikit-image's astronaut, read out of the wheel that `make models`
keeps; mirrored every other frame, at sizes from 150 to 185 px) is pasted into the sample's street
frames. The frames go to the real server
through a recording proxy, a real gRPC server that keeps every frame it forwards.
"""

from __future__ import annotations

import glob
import zipfile
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from offload_client import OffloadClient, Where
from offload_client._proto import offload_pb2 as pb
from offload_client._proto import offload_pb2_grpc as pb_grpc
from offload_client.engine import ModelRepository, SessionConfig, Task
from offload_client.evaluation import score_frame, total
from offload_client.redaction import FACE_MODEL
from offload_client.sample import GroundTruth, render_frames
from offload_server import OffloadServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PHOTO = "skimage/data/astronaut.png"


class RecordingProxy(pb_grpc.OffloadServicer):  # type: ignore[misc]  # generated base
    """Forwards Infer to the real server and keeps the encoded frame of every request."""

    def __init__(self, upstream: str) -> None:
        self.stub = pb_grpc.OffloadStub(grpc.insecure_channel(upstream))
        self.received: list[bytes] = []

    def Infer(self, request: pb.InferRequest, context: grpc.ServicerContext) -> pb.InferResponse:  # noqa: N802
        self.received.append(request.encoded.data)
        return self.stub.Infer(request, timeout=context.time_remaining())


@pytest.fixture(scope="module")
def proxy(server: OffloadServer) -> Iterator[tuple[str, RecordingProxy]]:
    recorder = RecordingProxy(server.grpc_target)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_OffloadServicer_to_server(recorder, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield f"127.0.0.1:{port}", recorder
    grpc_server.stop(None)


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> Task:
    return ModelRepository(models_dir).load(FACE_MODEL, None, SessionConfig(providers=["CPUExecutionProvider"]))


def photo() -> np.ndarray:
    wheels = glob.glob(str(ROOT / ".cache" / "wheels" / "scikit_image-*.whl"))
    if not wheels:
        pytest.fail("scikit-image's wheel (the face photographs) is missing: run `make models`")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return cv2.imdecode(np.frombuffer(wheel.read(PHOTO), np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture(scope="module")
def faces_video() -> tuple[list[np.ndarray], GroundTruth]:
    """12 street frames at 640x480 (two signs in each) with a face in the lower right corner, moving a little."""
    frames, truth = render_frames(seed=5, frames=48, width=640, height=480)
    face = photo()
    out = []
    for i in range(36, 48):
        size = 150 + 5 * (i % 8)
        picture = cv2.resize(face if i % 2 == 0 else cv2.flip(face, 1), (size, size))
        frame = frames[i].copy()
        x, y = 620 - size - 4 * (i - 36), 470 - size
        frame[y : y + size, x : x + size] = picture
        out.append(frame)
    return out, truth.model_copy(update={"frames": truth.frames[36:48]})


def faces(detector: Task, image: np.ndarray) -> list[float]:
    return [b.score for b in detector.run(image)[0].boxes if b.score >= 0.5]


def test_no_face_reaches_the_server_and_the_words_still_do(
    proxy: tuple[str, RecordingProxy], detector: Task, faces_video: tuple[list[np.ndarray], GroundTruth]
) -> None:
    target, recorder = proxy
    frames, truth = faces_video
    assert all(faces(detector, f) for f in frames)  # the originals show a face, every one

    accuracy = {}
    for mode in ("allow", "redact"):
        recorder.received.clear()
        with OffloadClient(target, policy="always-remote", privacy=mode, deadline_ms=5000) as client:
            results = [client.infer(f) for f in frames]
        assert all(r.where == Where.REMOTE for r in results), [r.reason for r in results]
        received = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in recorder.received]
        assert len(received) == len(frames)
        seen = [faces(detector, image) for image in received]
        if mode == "redact":
            assert not any(seen), seen  # not one face (score >= 0.5) in what the server received
        else:
            assert all(seen)  # the detector does see the faces when they are sent as they are
        score = total(score_frame(t.words, r.boxes, r.texts) for r, t in zip(results, truth.frames, strict=True))
        accuracy[mode] = score.word_accuracy
    assert accuracy["allow"] > 0.5 and accuracy["redact"] >= accuracy["allow"] - 0.02, accuracy


def test_redact_fails_closed_without_a_face_detector(
    server: OffloadServer, models_dir: Path, tmp_path: Path, faces_video: tuple[list[np.ndarray], GroundTruth]
) -> None:
    # A model repository with the text models but no face detector.
    repo = tmp_path / "models"
    repo.mkdir()
    for name in ("text-spotter", "text-detector", "text-recognizer", "text-orientation"):
        (repo / name).symlink_to(models_dir / name)
    frames, _ = faces_video
    with OffloadClient(server.grpc_target, policy="always-remote", privacy="redact", models_dir=repo) as client:
        result = client.infer(frames[0])
    assert result.where == Where.LOCAL and result.uplink_bytes == 0
    assert result.reason.startswith("privacy: redact, but the face detector cannot run (unknown model 'face-detector'")
    assert "offload models pull" in result.reason or "make models" in result.reason
