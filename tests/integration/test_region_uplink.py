"""Continuous mode's region uplink against the real server: the new sign goes, the known words stay home."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from offload_client import AsyncOffloadClient, OffloadClient, Where
from offload_core.engine.geometry import bounds
from offload_core.engine.image import decode_image, encode_jpeg
from offload_server import OffloadServer
from offload_tools.sample import GroundTruth, render_frames
from tests.proxy import recording_proxy

pytestmark = pytest.mark.integration
Sample = tuple[list[np.ndarray], GroundTruth]
NEW_WORD = "PHARMACY"


def a_sign_appears(sample: Sample) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """A steady view (a frame of the sample, its words), then the same view with a new sign on a free spot."""
    frames, truth = sample
    i = max(range(len(frames)), key=lambda k: len(truth.frames[k].words))
    before = frames[i]
    words = [bounds(np.asarray(w.quad)) for w in truth.frames[i].words]
    height, width = before.shape[:2]
    w, h = 210, 54
    spot = next(
        (x, y)
        for y in range(10, height - h - 10, 20)
        for x in range(10, width - w - 10, 20)
        if not any(x - 20 < x2 and x1 < x + w + 20 and y - 20 < y2 and y1 < y + h + 20 for x1, y1, x2, y2 in words)
    )
    after = before.copy()
    x, y = spot
    cv2.rectangle(after, (x, y), (x + w, y + h), (240, 240, 240), -1)
    cv2.putText(after, NEW_WORD, (x + 12, y + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 2, cv2.LINE_AA)
    return before, after, {w.text for w in truth.frames[i].words}


def replay(target: str, frames: list[np.ndarray]) -> list[tuple[str, int | None]]:
    """(text, track id) of every word shown once the last key frame's answer is in."""
    with OffloadClient(target, policy="always-remote", mode="continuous", deadline_ms=10_000) as oc:
        for frame in frames:
            result = oc.infer(frame)
            if result.key_frame:
                result = oc.settle()
                assert result.where == Where.REMOTE, result.reason
    return [(t.text, t.track_id) for t in result.texts]


def test_a_new_sign_goes_as_a_region_and_the_known_words_keep_their_reading(
    server: OffloadServer, sample: Sample
) -> None:
    before, after, known = a_sign_appears(sample)
    with recording_proxy(server.grpc_target) as (target, recorder):
        shown = replay(target, [before] * 4 + [after] * 4)
    first, *later = recorder.requests
    assert first.encoded.data and not first.regions  # nothing known yet: the whole frame
    assert later and all(r.regions for r in later), [r.WhichOneof("image") for r in later]
    assert all(r.ByteSize() < 0.5 * first.ByteSize() for r in later)  # the walls stayed home
    texts = {text for text, _ in shown}
    assert NEW_WORD in texts  # read from the region
    assert len(texts & known) >= len(known) - 1  # the words it did not send are still shown, as tracked


def test_an_old_server_gets_whole_frames(server: OffloadServer, sample: Sample) -> None:
    before, after, _ = a_sign_appears(sample)
    with recording_proxy(server.grpc_target, old_server=True) as (target, recorder):
        shown = replay(target, [before] * 4 + [after] * 4)
    assert len(recorder.requests) >= 2 and not any(r.regions for r in recorder.requests)
    assert NEW_WORD in {text for text, _ in shown}


async def test_the_async_client_sends_regions_too(server: OffloadServer, sample: Sample) -> None:
    before, after, _ = a_sign_appears(sample)
    with recording_proxy(server.grpc_target) as (target, recorder):
        async with AsyncOffloadClient(target, policy="always-remote", mode="continuous", deadline_ms=10_000) as oc:
            for frame in [before] * 4 + [after] * 4:
                if (await oc.infer(frame)).key_frame:
                    result = await oc.settle()
    assert any(r.regions for r in recorder.requests)
    assert NEW_WORD in {t.text for t in result.texts}


def test_a_cut_goes_coarse_with_sharp_crops_where_the_device_finds_words(server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    photos, truth = render_frames(seed=3, frames=30, style="real")
    busy = max(range(len(photos)), key=lambda k: len(truth.frames[k].words))
    after, words = photos[busy], {w.text for w in truth.frames[busy].words}
    assert len(words) >= 2
    with recording_proxy(server.grpc_target) as (target, recorder):
        shown = replay(target, [frames[0]] * 4 + [after] * 4)  # a cut: nothing known of the new view
    look = recorder.requests[-1]
    base, *sharp = look.regions
    assert (base.x, base.y, base.width, base.height) == (0, 0, 640, 480)
    assert decode_image(base.image.data).shape[:2] == (240, 320)  # coarse: to find what the device missed
    assert sharp and all(r.x % 16 == 0 and r.y % 16 == 0 for r in sharp)  # sharp where the device found words
    assert look.ByteSize() < 0.7 * len(encode_jpeg(after, 50))  # less than the whole frame at the client's quality
    assert len(words & {text for text, _ in shown}) >= len(words) / 2  # read from the sharp crops


def a_page_of_text() -> np.ndarray:
    """A screenful of text lines on white: a sharp crop on every line would cost more than the page."""
    page = np.full((480, 640, 3), 255, np.uint8)
    for row in range(14):
        words = " ".join(["offload", "region", "uplink", "JPEG", "tracker", "server"][(row + k) % 6] for k in range(4))
        cv2.putText(page, words, (12, 30 + 32 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2, cv2.LINE_AA)
    return page


def test_a_look_that_would_cost_more_than_the_whole_frame_goes_whole(server: OffloadServer, sample: Sample) -> None:
    frames, _ = sample
    page = a_page_of_text()
    with recording_proxy(server.grpc_target) as (target, recorder):
        shown = replay(target, [frames[0]] * 4 + [page] * 4)  # a cut to a page: nothing known of it
    last = recorder.requests[-1]
    assert last.encoded.data and not last.regions  # whole, at the client's quality
    lines = " ".join(text for text, _ in shown)
    assert "offload" in lines and "tracker" in lines  # and read
