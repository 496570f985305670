"""Continuous mode with a real server behind the link emulator, on a hand-held pan video at 15 fps.

Every frame is answered at once; words the server read on a key frame appear on later frames where
only tracking could have put them, in the right place; local-only puts no byte on the wire; a
server killed mid-video leaves tracking and the device's key frames going.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from offload_client import AsyncOffloadClient, FrameResult, OffloadClient, Where
from offload_core.types import Source
from offload_server import OffloadServer, Settings
from offload_server.testing import serve_in_thread
from offload_tools.evaluation import score_frame
from offload_tools.linkem import LinkConfig, LinkEmulator, Trace
from offload_tools.sample import GroundTruth, render_frames

pytestmark = pytest.mark.integration
FPS = 15.0
# Continuous mode promises an answer within 50 ms (make bench-continuous: p99 on the emulated device).
# Here the server runs in this process, on the same 2 cores and the same GIL, beside the rest of the
# suite: the median frame within that, and none past 8 times it. A frame that adopts a landing answer
# shares the cores with the server's work and the tracking forward (a full suite's p95 reached 100 ms;
# on a 2-core AMD EPYC, one frame in 75 took 278 ms). 400 ms is still less than one key frame's round
# trip on this link (40 KB at 2 Mbit/s, 80 ms of delay, ~300 ms on the server): no frame waited for one.
ANSWER_MS = 50.0
EVERY_FRAME_WITHIN_MS = 8 * ANSWER_MS
# Of the carried words still in view, the share whose box still overlaps the word (IoU >= 0.5): 1.0 in
# 4 runs here; boxes left where they were 3 frames earlier place 0.57 of them.
PLACED_AT_LEAST = 0.8


@pytest.fixture(scope="module")
def pan() -> tuple[list[np.ndarray], GroundTruth]:
    return render_frames(seed=5, frames=75, style="pan")


@contextlib.asynccontextmanager
async def linked(
    server: OffloadServer, up_mbit_s: float, down_mbit_s: float, delay_ms: float
) -> AsyncIterator[LinkEmulator]:
    """The link emulator between a client and `server`, at constant rates."""
    host, port = server.grpc_target.rsplit(":", 1)
    config = LinkConfig(uplink=Trace.constant(up_mbit_s), downlink=Trace.constant(down_mbit_s), delay_ms=delay_ms)
    link = LinkEmulator(config, ("127.0.0.1", 0), (host, int(port)))
    await link.start()
    try:
        yield link
    finally:
        await link.stop()


async def play(client: AsyncOffloadClient, frames: list[np.ndarray]) -> list[FrameResult]:
    """The frames at camera rate, as an app's camera loop hands them over."""
    out = []
    t0 = time.monotonic()
    for i, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
        out.append(await client.infer(frame))
    return out


async def test_every_frame_is_answered_at_once_and_tracked_words_sit_where_they_are(
    server: OffloadServer, pan: tuple[list[np.ndarray], GroundTruth]
) -> None:
    frames, truth = pan
    async with (
        linked(server, up_mbit_s=2, down_mbit_s=8, delay_ms=40) as link,
        AsyncOffloadClient(f"127.0.0.1:{link.port}", policy="always-remote", mode="continuous") as oc,
    ):
        results = await play(oc, frames)
        sent = link.counters.uplink_bytes
    assert len(results) == len(frames)
    latencies = sorted(r.latency_ms for r in results)
    assert latencies[len(latencies) // 2] <= ANSWER_MS, latencies
    assert latencies[-1] < EVERY_FRAME_WITHIN_MS, latencies[-5:]
    keys = [i for i, r in enumerate(results) if r.key_frame]
    assert 2 <= len(keys) <= len(frames) // 3, [results[i].reason for i in keys]
    # Frames whose words came from an inference at least 3 frames earlier, carried by the tracker: the
    # words the answer holds that are still in view must sit where they are on *this* frame. Words that
    # came into view since, or that the server misread, are not the tracker's to place: they are left
    # out, so the check does not depend on how many key frames a slow machine managed to send.
    carried = [
        (i, r) for i, r in enumerate(results)
        if r.source == Source.TRACKED and r.key_frame_id is not None and i - r.key_frame_id >= 3 and r.texts
    ]  # fmt: skip
    assert len(carried) >= 20, [(r.source, r.key_frame_id) for r in results]
    scores = [
        score_frame([w for w in truth.frames[i].words if w.text in {t.text for t in r.texts}], r.boxes, r.texts)
        for i, r in carried
    ]
    placed = sum(s.words_correct for s in scores) / sum(s.words_total for s in scores)
    assert placed >= PLACED_AT_LEAST, (placed, [(s.words_correct, s.words_total) for s in scores])
    # The first answer lands on a later frame than its own, tracked through the frames between: its
    # boxes match the landing frame's words, not only the key frame's.
    landing = next(i for i, r in enumerate(results) if r.key_frame_id is not None)
    first = results[landing]
    assert first.where == Where.REMOTE and landing > first.key_frame_id and first.uplink_bytes > 0
    assert score_frame(truth.frames[landing].words, first.boxes, first.texts).words_correct >= 1
    assert first.age_ms is not None and first.age_ms >= (landing - first.key_frame_id) / FPS * 1000 - 1
    assert {t.track_id for t in first.texts} == set(range(len(first.texts)))
    assert sent >= sum(r.uplink_bytes for r in results) > 0  # each key frame's bytes, counted once


async def test_local_only_continuous_puts_no_byte_on_the_link(
    server: OffloadServer, pan: tuple[list[np.ndarray], GroundTruth]
) -> None:
    frames, _ = pan
    async with linked(server, up_mbit_s=50, down_mbit_s=50, delay_ms=5) as link:
        async with AsyncOffloadClient(
            f"127.0.0.1:{link.port}", policy="always-remote", privacy="local-only", mode="continuous"
        ) as oc:
            results = await play(oc, frames[:45])
            await asyncio.sleep(0.5)  # a key frame still in flight would have sent by now
        assert link.counters.uplink_bytes == 0
    assert all(r.where in (Where.LOCAL, Where.NONE) and r.uplink_bytes == 0 for r in results)
    assert any(r.texts and r.source == Source.TRACKED for r in results)


def test_killing_the_server_mid_video_leaves_tracking_and_device_key_frames_going(
    models_dir: Path, pan: tuple[list[np.ndarray], GroundTruth]
) -> None:
    frames, _ = pan
    settings = Settings(grpc_port=0, http_port=0, models_dir=models_dir, models=["text-spotter"], spin_wait=False)
    results: list[FrameResult] = []
    with serve_in_thread(settings) as running:
        oc = OffloadClient(running.grpc_target, policy="always-remote", mode="continuous", deadline_ms=500)
        t0 = time.monotonic()
        for i, frame in enumerate(frames[:25]):
            time.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
            results.append(oc.infer(frame))
    killed = len(results)  # the server is gone from here on
    try:
        t0 = time.monotonic()
        for i, frame in enumerate(frames[25:]):
            time.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
            results.append(oc.infer(frame))
    finally:
        oc.close()
    assert len(results) == len(frames)
    after = results[killed:]
    assert max(r.latency_ms for r in after) < EVERY_FRAME_WITHIN_MS
    assert any(r.where == Where.REMOTE for r in results[:killed])
    # Key frames after the kill fall back to the device, and their answers land: the words go on.
    local = [r for r in after if r.where == Where.LOCAL and r.key_frame_id is not None and r.key_frame_id >= killed]
    assert local, [r.reason for r in after]
    assert sum(bool(r.texts) for r in after) >= len(after) // 2
