"""A fresh app's first start: no device model on disk, then pulled from the server; providers the app asks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offload_client import OffloadClient, Where
from offload_client.model_sync import ModelSyncError, pull_model
from offload_core.engine.repository import ModelRepository, sha256_of
from offload_server import OffloadServer
from offload_server.testing import unused_port
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]


def test_pull_fetches_the_spec_and_the_device_files_verified_once(server: OffloadServer, tmp_path: Path) -> None:
    seen: dict[str, tuple[int, int]] = {}
    paths = pull_model(server.http_url, "text-spotter", tmp_path, on_progress=lambda n, r, t: seen.update({n: (r, t)}))
    repo = ModelRepository(tmp_path)
    spec = repo.spec("text-spotter")
    device = spec.variant(spec.device_variant)
    assert sorted(p.parent.name for p in paths) == sorted(spec.pipeline.values())
    for role, stage in spec.pipeline.items():
        stage_spec = repo.spec(stage)
        variant = stage_spec.variant(device.stages[role])
        assert repo.file_of(stage_spec, variant) in paths  # exists and hashes to what model.yaml records
        received, total = seen[f"{stage}/{variant.name}"]
        # The progress counts bytes on the wire: the whole body, compressed (smaller than the file).
        assert 0 < received == total < (tmp_path / stage / str(variant.file)).stat().st_size
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    seen.clear()
    assert pull_model(server.http_url, "text-spotter", tmp_path, on_progress=lambda n, r, t: seen.update({n: (r, t)}))
    assert seen == {} and {p: p.stat().st_mtime_ns for p in paths} == stamps  # intact files are not fetched again


def test_pull_names_what_to_fix(server: OffloadServer, tmp_path: Path) -> None:
    with pytest.raises(ModelSyncError, match=r"answered 404: .*unknown model 'nope'"):
        pull_model(server.http_url, "nope", tmp_path)
    with pytest.raises(ModelSyncError, match="is the server's HTTP port right"):
        pull_model(f"http://127.0.0.1:{unused_port()}", "text-spotter", tmp_path, timeout_s=2)


def with_words(sample: Sample) -> list[np.ndarray]:
    frames, truth = sample
    return [f for f, t in zip(frames, truth.frames, strict=True) if t.words]


def test_a_first_start_sends_frames_to_the_server_until_the_device_model_is_pulled(
    server: OffloadServer, sample: Sample, tmp_path: Path
) -> None:
    frames = with_words(sample)
    empty = tmp_path / "cache" / "models"
    with OffloadClient(
        server.grpc_target, policy="always-local", models_dir=empty, sync_models_from=server.http_url
    ) as client:
        first = client.infer(frames[0])
        assert client.wait_for_device_model(timeout_s=120)
        later = client.infer(frames[1])
        client.privacy = "local-only"  # allowed now that the device can answer
        private = client.infer(frames[2])
    # Even always-local sends while there is no device model: the frame needs an answer.
    assert first.where == Where.REMOTE and first.reason.startswith("no device model yet: pulling text-spotter")
    assert first.words
    assert later.where == Where.LOCAL and later.reason == "always-local" and later.words
    assert private.where == Where.LOCAL and private.uplink_bytes == 0
    assert sha256_of(empty / "text-detector" / "model.yaml") == sha256_of(
        ModelRepository().root / "text-detector" / "model.yaml"
    )


def test_without_a_device_model_every_frame_still_gets_a_result_and_says_what_to_do(
    server: OffloadServer, sample: Sample, tmp_path: Path
) -> None:
    frames, _ = sample
    with OffloadClient(server.grpc_target, models_dir=tmp_path / "none") as client:
        served = client.infer(frames[0])
    assert served.where == Where.REMOTE and "offload models pull --from" in served.reason
    with OffloadClient(f"127.0.0.1:{unused_port()}", models_dir=tmp_path / "none", deadline_ms=300) as client:
        lost = [client.infer(f) for f in frames[:4]]
    assert all(r.where == Where.NONE and r.error for r in lost)  # a result for every frame, no answer in it
    assert "UNAVAILABLE" in lost[0].reason and lost[-1].reason.endswith("remote unavailable: circuit open")

    with pytest.raises(ValueError, match="local-only' runs every frame on the device, but no device model"):
        OffloadClient(server.grpc_target, models_dir=tmp_path / "none", privacy="local-only")
    with OffloadClient(server.grpc_target, models_dir=tmp_path / "none") as client, pytest.raises(ValueError):
        client.privacy = "local-only"


def test_device_providers_the_runtime_lacks_fall_back_to_the_cpu_with_a_note(
    server: OffloadServer, sample: Sample
) -> None:
    frames = with_words(sample)
    with OffloadClient(
        server.grpc_target, policy="always-local", device_providers=["CoreMLExecutionProvider"]
    ) as client:
        first, second = client.infer(frames[0]), client.infer(frames[1])
    assert first.where == Where.LOCAL and first.words
    assert "['CoreMLExecutionProvider'] are not in this onnxruntime build" in first.reason
    assert "CPUExecutionProvider" in first.reason and second.reason == "always-local"


def test_a_pulled_device_model_brings_its_ladder_to_the_accuracy_objective(
    server: OffloadServer, sample: Sample, tmp_path: Path
) -> None:
    frames = with_words(sample)
    empty = tmp_path / "cache" / "models"
    with OffloadClient(
        server.grpc_target, policy="adaptive-accuracy", deadline_ms=10_000, models_dir=empty,
        sync_models_from=server.http_url,
    ) as client:  # fmt: skip
        assert client.wait_for_device_model(timeout_s=120)
        assert client.local.loaded == ["device", "device-balanced", "device-accurate"]  # warmed before any frame
        client.privacy = "local-only"
        variants = [client.infer(frames[i % len(frames)]).variant for i in range(6)]
    # The default until five frames have shown the device's spread; then the one model.yaml says reads more.
    assert variants[:5] == ["device"] * 5 and variants[-1] == "device-accurate", variants
