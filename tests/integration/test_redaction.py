"""Privacy mode `redact`: what reaches the server has no face in it, and the words are still read.

Every face photograph scikit-image ships (the astronaut, the cameraman in profile, 100 faces of
Labeled Faces in the Wild; read out of the wheel that `make models` keeps), 25-200 px, rotated,
mirrored, cut by the frame's edge, one to three a frame, is pasted beside the words of the sample's
street frames (`offload_tools/faces.py`, on a seed neither the painter's tuning (1) nor bench-redact's
confirmation (2) used). The frames go to the real server through a recording proxy, a real gRPC
server that keeps every frame it forwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from offload_client import AsyncOffloadClient, OffloadClient, Where
from offload_client.redaction import FACE_MODEL, Redactor, Region
from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.tasks.face_detection import FaceDetection
from offload_server import OffloadServer
from offload_tools.evaluation import score_frame, total
from offload_tools.faces import FaceFrame, face_frames
from offload_tools.linkem import LinkConfig, LinkEmulator, Trace
from offload_tools.sample import GroundTruth, render_frames
from tests.proxy import RecordingProxy, recording_proxy

pytestmark = pytest.mark.integration
SEED = 3
CHANGED = 20.0  # mean absolute difference of a face rectangle's pixels that counts as painted over


@pytest.fixture(scope="module")
def proxy(server: OffloadServer) -> Iterator[tuple[str, RecordingProxy]]:
    with recording_proxy(server.grpc_target) as running:
        yield running


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> FaceDetection:
    """The promise's judge: the device's own face detector, at full resolution, at its threshold (0.5)."""
    task = ModelRepository(models_dir).load(FACE_MODEL, None, SessionConfig(providers=["CPUExecutionProvider"]))
    assert isinstance(task, FaceDetection)
    return task


@pytest.fixture(scope="module")
def faces_video() -> tuple[list[FaceFrame], GroundTruth]:
    return face_frames(seed=SEED, count=24, beside_words=True)


def faces(detector: FaceDetection, image: np.ndarray) -> list[tuple[float, ...]]:
    return [(*b.points[0], *b.points[2]) for b in detector.find(image, detector.score_threshold)]


def overlaps(box: tuple[float, ...], rect: tuple[int, int, int, int]) -> bool:
    return box[0] < rect[2] and box[2] > rect[0] and box[1] < rect[3] and box[3] > rect[1]


def test_no_face_reaches_the_server_and_the_words_still_do(
    proxy: tuple[str, RecordingProxy], detector: FaceDetection, faces_video: tuple[list[FaceFrame], GroundTruth]
) -> None:
    target, recorder = proxy
    frames, truth = faces_video
    # The faces the detector finds in the originals, at full resolution: those the promise is about.
    seen = [[r for r in f.faces if any(overlaps(box, r) for box in faces(detector, f.image))] for f in frames]
    assert sum(map(len, seen)) >= 16, seen  # many faces, in most frames
    assert {s[:3] for f in frames for s in f.sources} >= {"ast", "cam", "lfw"}  # every kind of photograph appears

    accuracy = {}
    for mode in ("allow", "redact"):
        recorder.requests.clear()
        with OffloadClient(target, policy="always-remote", privacy=mode, deadline_ms=5000) as client:
            results = [client.infer(f.image) for f in frames]
        assert all(r.where == Where.REMOTE for r in results), [r.reason for r in results]
        received = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in recorder.images]
        assert len(received) == len(frames)
        if mode == "redact":
            assert not any(faces(detector, image) for image in received)  # not one face (0.5) reached the server
            for frame, rects, image in zip(frames, seen, received, strict=True):
                for x1, y1, x2, y2 in rects:  # and every face the detector saw was painted over, pixel by pixel
                    diff = np.abs(frame.image[y1:y2, x1:x2].astype(np.int16) - image[y1:y2, x1:x2].astype(np.int16))
                    assert diff.mean() >= CHANGED, (frame.sources, (x1, y1, x2, y2), diff.mean())
        else:
            shown = sum(bool(faces(detector, image)) for image in received)
            assert shown >= sum(map(bool, seen)) - 1  # sent as they are, the faces reach the server
        score = total(score_frame(t.words, r.boxes, r.texts) for r, t in zip(results, truth.frames, strict=True))
        accuracy[mode] = score.word_accuracy
    assert accuracy["allow"] > 0.5 and accuracy["redact"] >= accuracy["allow"] - 0.02, accuracy


def test_continuous_mode_paints_every_key_frame_it_sends(
    proxy: tuple[str, RecordingProxy], detector: FaceDetection, faces_video: tuple[list[FaceFrame], GroundTruth]
) -> None:
    """Key frames go through the same uplink as per-frame mode: redacted before they leave."""
    target, recorder = proxy
    frames, _ = faces_video
    recorder.requests.clear()
    shown = []
    with OffloadClient(target, policy="always-remote", privacy="redact", mode="continuous", deadline_ms=5000) as oc:
        for f in frames[:8]:
            for _ in range(6):  # each shot held for 6 frames at 15 fps: a cut, then steady frames
                result = oc.infer(f.image)
                shown.append(result)
                assert result.where in (Where.REMOTE, Where.NONE), result.reason
                time.sleep(1 / 15)
        time.sleep(1.0)  # the last key frame lands
    received = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in recorder.images]
    assert len(received) >= 3, (len(received), [r.reason for r in shown if r.key_frame])
    assert not any(faces(detector, image) for image in received)  # not one face reached the server


def test_a_face_that_walks_into_a_steady_view_is_painted_in_the_region_sent(
    proxy: tuple[str, RecordingProxy], detector: FaceDetection, faces_video: tuple[list[FaceFrame], GroundTruth]
) -> None:
    """Region requests cut their crops from the painted frame: no crop holds a face (counted at the server)."""
    target, recorder = proxy
    frames, _ = faces_video
    face = next(f for f in frames if f.faces and faces(detector, f.image))
    x1, y1, x2, y2 = face.faces[0]
    steady = render_frames(seed=SEED, frames=1, width=640, height=480)[0][0]
    walked_in = steady.copy()
    walked_in[y1:y2, x1:x2] = face.image[y1:y2, x1:x2]
    assert faces(detector, walked_in)  # the face is there to be found
    recorder.requests.clear()
    with OffloadClient(target, policy="always-remote", privacy="redact", mode="continuous", deadline_ms=5000) as oc:
        for image in [steady] * 4 + [walked_in] * 4:
            if oc.infer(image).key_frame:
                assert oc.settle().key_frame_id is not None
    regions = [r for r in recorder.requests if r.regions]
    assert regions, [(r.frame_id, r.WhichOneof("image")) for r in recorder.requests]  # the face came as a region
    crops = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in recorder.images]
    assert not any(faces(detector, crop) for crop in crops)  # not one face reached the server


def test_every_image_continuous_mode_sends_on_a_panning_camera_is_painted(
    proxy: tuple[str, RecordingProxy], detector: FaceDetection, faces_video: tuple[list[FaceFrame], GroundTruth]
) -> None:
    """A hand-held pan with a new face walking in every 8 frames, at camera rate, to a region-taking server:
    whole key frames, looks, FIND and READ crops, and (adaptive) probes all go through verify-then-send.
    Recorded where the server receives them, not one holds a face the device's detector finds."""
    target, recorder = proxy
    pan, _ = render_frames(seed=SEED + 40, frames=64, width=640, height=480, style="pan")
    visitors = [f for f in faces_video[0] if any(h >= 45 for h in f.sizes)]
    video = []
    for i, frame in enumerate(pan):
        visitor = visitors[(i // 8) % len(visitors)]
        shown = frame.copy()
        for (x1, y1, x2, y2), size in zip(visitor.faces, visitor.sizes, strict=True):
            if size >= 45:
                dx = 4 * (i % 8)  # walking across the view
                shown[y1:y2, x1 + dx : x2 + dx] = visitor.image[y1:y2, x1:x2][:, : shown.shape[1] - x1 - dx]
        video.append(shown)
    with_faces = sum(bool(faces(detector, f)) for f in video)
    assert with_faces >= len(video) // 2, with_faces  # the faces are there to be found, in most frames
    recorder.requests.clear()
    answered: list[bool] = []
    for policy in ("always-remote", "adaptive"):
        with OffloadClient(target, policy=policy, privacy="redact", mode="continuous", deadline_ms=5000) as oc:
            t0 = time.monotonic()
            for i, image in enumerate(video):
                time.sleep(max(0.0, t0 + i / 15 - time.monotonic()))
                answered.append(oc.infer(image).key_frame_id is not None)
            oc.settle()
    received = [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR) for b in recorder.images]
    regions = [r for r in recorder.requests if r.regions]
    assert len(received) >= 6 and regions, [
        (r.frame_id, r.WhichOneof("image"), len(r.regions)) for r in recorder.requests
    ]
    with_face = [i for i, image in enumerate(received) if faces(detector, image)]
    assert not with_face, (with_face, len(received))
    assert sum(answered) >= len(answered) // 2  # the words went on: most frames show a key frame's answer


def paints_nothing(image: np.ndarray, region: Region) -> None:
    """A painter the face survives: what a face that cannot be removed looks like to the redactor."""


async def test_a_face_that_cannot_be_painted_over_stays_on_the_device(
    server: OffloadServer, faces_video: tuple[list[FaceFrame], GroundTruth], models_dir: Path
) -> None:
    """Counted on the wire itself: the link emulator sits between client and server."""
    frames, _ = faces_video
    with_face = next(f.image for f in frames if "astronaut" in f.sources)
    plain = render_frames(seed=SEED, frames=1, width=640, height=480)[0][0]
    host, port = server.grpc_target.rsplit(":", 1)
    config = LinkConfig(uplink=Trace.constant(50), downlink=Trace.constant(50), delay_ms=5)
    link = LinkEmulator(config, ("127.0.0.1", 0), (host, int(port)))
    await link.start()
    try:
        async with AsyncOffloadClient(f"127.0.0.1:{link.port}", policy="always-remote", privacy="redact") as client:
            detector = Redactor.load(models_dir).detector
            client._router.redaction_ready(Redactor(detector, paint=paints_nothing))  # a painter this frame defeats
            sent = await client.infer(plain)  # a frame with no face leaves as usual
            assert sent.where == Where.REMOTE and sent.uplink_bytes > 0, sent.reason
            await asyncio.sleep(0.2)  # the reply's HTTP/2 control frames
            before = link.counters.uplink_bytes
            kept = [await client.infer(with_face) for _ in range(3)]
            assert all(r.where == Where.LOCAL and r.uplink_bytes == 0 for r in kept), [r.reason for r in kept]
            assert all(r.redact_kept_local and r.redact_repainted for r in kept)
            assert all("a face remained after painting twice" in r.reason for r in kept), kept[0].reason
            assert kept[0].words or kept[0].boxes is not None  # the device answered
            # At most a few HTTP/2 control frames (9-17 bytes each); a frame would be tens of kilobytes.
            assert link.counters.uplink_bytes - before < 64
            again = await client.infer(plain)
            assert again.where == Where.REMOTE and not again.redact_kept_local
    finally:
        await link.stop()


def test_redact_fails_closed_without_a_face_detector(
    server: OffloadServer, models_dir: Path, tmp_path: Path, faces_video: tuple[list[FaceFrame], GroundTruth]
) -> None:
    # A model repository with the text models but no face detector.
    repo = tmp_path / "models"
    repo.mkdir()
    for name in ("text-spotter", "text-detector", "text-recognizer", "text-orientation"):
        (repo / name).symlink_to(models_dir / name)
    frames, _ = faces_video
    with OffloadClient(server.grpc_target, policy="always-remote", privacy="redact", models_dir=repo) as client:
        result = client.infer(frames[0].image)
    assert result.where == Where.LOCAL and result.uplink_bytes == 0
    assert result.reason.startswith("privacy: redact, but the face detector cannot run (unknown model 'face-detector'")
    assert "offload models pull" in result.reason or "make models" in result.reason
