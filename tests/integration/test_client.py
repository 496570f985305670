"""The SDK against the real server: both paths, fallback when the server is gone, the async twin."""

from __future__ import annotations

import numpy as np
import pytest

from offload_client import AsyncOffloadClient, OffloadClient, Where
from offload_server import OffloadServer
from offload_server.testing import unused_port
from offload_tools.evaluation import score_frame, total
from offload_tools.linkem import LinkConfig, LinkEmulator, Trace
from offload_tools.sample import GroundTruth

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]


def test_always_remote_returns_server_metadata_with_timings(server: OffloadServer, sample: Sample) -> None:
    frames, truth = sample
    with OffloadClient(server.grpc_target, policy="always-remote") as client:
        result = client.infer(frames[2])
    assert result.where == Where.REMOTE and result.reason == "always-remote"
    assert set(result.words) == {w.text for w in truth.frames[2].words}
    t = result.timings
    assert t.server_inference_ms > 0 and t.encode_ms > 0 and t.local_inference_ms == 0
    assert result.uplink_bytes > 1000 and result.variant == "server"


def test_always_local_never_touches_the_server(server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    before = server.metrics.request_count()
    with OffloadClient(server.grpc_target, policy="always-local") as client:
        results = [client.infer(f) for f in frames[:3]]
    assert all(r.where == Where.LOCAL and r.variant == "device" and r.uplink_bytes == 0 for r in results)
    assert server.metrics.request_count() == before


def test_adaptive_accuracy_climbs_the_device_ladder_when_the_deadline_allows(
    server: OffloadServer, sample: Sample
) -> None:
    frames, truth = sample
    with OffloadClient(server.grpc_target, policy="adaptive-accuracy", privacy="local-only", deadline_ms=5000) as roomy:
        # Every variant is loaded and warmed before the first frame: none pays for a session's creation.
        assert roomy.local.loaded == roomy.local.variants == ["device", "device-balanced", "device-accurate"]
        # ...and timed on an empty frame: the detector at 800 px costs more than at 480 on any machine.
        assert roomy.local.blank_ms["device-accurate"] > roomy.local.blank_ms["device"] > 0
        results = [roomy.infer(f) for f in frames[:6]]
    # The first frames teach the default's time; then the most accurate variant (int8 detector at 800) fits.
    assert results[-1].variant == "device-accurate" and "device-accurate" in results[-1].reason, results[-1].reason
    assert all(r.where == Where.LOCAL and r.uplink_bytes == 0 for r in results)
    accurate = [r for r in results if r.variant == "device-accurate"]
    assert total(score_frame(truth.frames[r.frame_id].words, r.boxes, r.texts) for r in accurate).word_accuracy > 0.5
    with OffloadClient(server.grpc_target, policy="adaptive-accuracy", privacy="local-only", deadline_ms=1) as tight:
        assert all(tight.infer(f).variant == "device" for f in frames[:3])  # nothing fits: the fastest one


def test_adaptive_uses_both_paths_and_records_its_predictions(server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    # A device 8x slower than this machine makes remote the better path once it has been measured (at 3x the
    # device reads the sample's frames in ~125 ms, the server in ~150 ms: remote answered only races it won).
    with OffloadClient(server.grpc_target, policy="adaptive", device_slowdown=8) as client:
        results = [client.infer(f) for f in frames[:12]]
    assert {r.where for r in results} == {Where.LOCAL, Where.REMOTE}
    decided = results[-1]
    assert decided.predicted_local_ms is not None and decided.predicted_remote_ms is not None


def test_every_frame_gets_a_result_when_the_server_is_unreachable(sample: Sample) -> None:
    frames, truth = sample
    with OffloadClient(f"127.0.0.1:{unused_port()}", policy="always-remote", deadline_ms=500) as client:
        results = [client.infer(f) for f in frames[:4]]
    assert all(r.where == Where.LOCAL for r in results)
    assert results[0].reason.startswith("fallback: remote failed (UNAVAILABLE")
    assert results[-1].reason == "remote unavailable: circuit open"
    # The device model really answered: it read the words of these frames.
    score = total(score_frame(truth.frames[i].words, r.boxes, r.texts) for i, r in enumerate(results))
    assert score.words_total > 0 and score.word_accuracy >= 0.9, score


async def test_a_late_server_is_replaced_by_the_local_model(server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    # A 0.5 Mbit/s uplink takes seconds for a frame: the device model, started at the hedge, is first.
    slow = LinkConfig(uplink=Trace.constant(0.5), downlink=Trace.constant(0.5), delay_ms=20)
    host, port = server.grpc_target.rsplit(":", 1)
    link = LinkEmulator(slow, ("127.0.0.1", 0), (host, int(port)))
    await link.start()
    try:
        async with AsyncOffloadClient(f"127.0.0.1:{link.port}", policy="always-remote", deadline_ms=50) as client:
            result = await client.infer(frames[1])
    finally:
        await link.stop()
    assert result.where == Where.LOCAL and result.words
    assert result.reason.startswith("fallback: remote failed (DEADLINE_EXCEEDED")


def test_a_late_answer_still_wins_over_a_slower_device(server: OffloadServer, sample: Sample) -> None:
    frames, truth = sample
    # Past the 40 ms hedge (the server needs more) the device model starts, but at 20x slower it needs
    # seconds: the server is first.
    with OffloadClient(server.grpc_target, policy="always-remote", deadline_ms=40, device_slowdown=20) as client:
        result = client.infer(frames[1])
    assert result.where == Where.REMOTE and result.reason.startswith("remote answered after the"), result.reason
    assert set(result.words) == {w.text for w in truth.frames[1].words}


async def test_async_client_matches_the_sync_one(server: OffloadServer, sample: Sample) -> None:
    frames, truth = sample
    async with AsyncOffloadClient(server.grpc_target, policy="always-remote") as client:
        remote = await client.infer(frames[2])
        client.privacy = "local-only"
        local = await client.infer(frames[2])
    assert remote.where == Where.REMOTE and local.where == Where.LOCAL
    assert set(remote.words) == {w.text for w in truth.frames[2].words}
    assert local.reason == "privacy: local-only"
