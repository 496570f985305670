"""The region plan: which parts of a key frame go, which words are read again, which stay home."""

from __future__ import annotations

import numpy as np

from offload_client.region_plan import FIND_MARGIN, READ_QUALITY, WHOLE_SHARE, plan_regions
from offload_client.tracking import Track
from offload_core.types import Box, Prediction, TextItem

WIDTH, HEIGHT = 640, 480


def track(track_id: int, x: float, y: float, w: float, h: float, text: str, score: float) -> Track:
    quad = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)
    return Track(track_id, quad, text, score, read_area=w * h)


def steady() -> np.ndarray:
    """A thumbnail-sized difference map where nothing changed."""
    return np.zeros((36, 64), np.float32)


def test_a_pan_sends_the_uncovered_strip_and_the_unsure_word_not_the_rest() -> None:
    difference = steady()
    difference[:, 56:] = np.inf  # the camera panned right: the last 8 of 64 columns are new
    well_read = track(0, 100, 100, 120, 30, "HOTEL", 0.97)
    unsure = track(1, 300, 300, 80, 24, "Bakey", 0.6)
    cut_by_strip = track(2, 520, 200, 80, 24, "TAXI", 0.95)  # starts left of the strip, ends in it
    plan = plan_regions(WIDTH, HEIGHT, [well_read, unsure, cut_by_strip], difference)
    assert plan is not None
    finds = [c for c in plan.crops if not c.read]
    reads = [c for c in plan.crops if c.read]
    assert len(finds) == 1 and finds[0].x + finds[0].width == WIDTH and finds[0].height == HEIGHT
    assert finds[0].x <= 520 - 4  # grown to hold the word it cut, whole
    assert finds[0].x >= 560 - FIND_MARGIN[0] - 60  # and not much more
    assert len(reads) == 1 and reads[0].quality == READ_QUALITY
    read = reads[0]
    assert read.x < 300 and read.x + read.width > 380 and read.y < 300 and read.y + read.height > 324
    assert not any(c.x < 220 and c.y < 130 for c in plan.crops)  # the well-read word stays home
    assert plan.share < 0.3
    assert {t.text for t in plan.carried} == {"HOTEL", "Bakey", "TAXI"}


def test_a_passer_by_sends_where_they_were_and_are() -> None:
    difference = steady()
    difference[:, 20:28] = 60.0  # a dark band moved across the middle
    plan = plan_regions(WIDTH, HEIGHT, [], difference)
    assert plan is not None and all(not c.read for c in plan.crops)
    assert all(c.x >= 150 and c.x + c.width <= 340 for c in plan.crops)


def test_when_most_of_the_view_is_new_the_whole_frame_goes() -> None:
    difference = steady()
    difference[:, : int(64 * (WHOLE_SHARE + 0.1))] = np.inf
    assert plan_regions(WIDTH, HEIGHT, [], difference) is None
    # Nothing new and nothing to read: the trigger saw something else (an old answer): all of it goes.
    assert plan_regions(WIDTH, HEIGHT, [track(0, 10, 10, 50, 20, "BUS", 0.99)], steady()) is None


def test_the_answer_keeps_the_words_it_did_not_send_and_replaces_those_it_read() -> None:
    difference = steady()
    difference[:, 56:] = np.inf
    kept, reread = track(0, 100, 100, 120, 30, "HOTEL", 0.97), track(1, 300, 300, 80, 24, "Bakey", 0.6)
    plan = plan_regions(WIDTH, HEIGHT, [kept, reread], difference)
    assert plan is not None

    def item(x: float, y: float, w: float, h: float, text: str) -> TextItem:
        box = Box(points=[(x, y), (x + w, y), (x + w, y + h), (x, y + h)], label="text")
        return TextItem(box=box, text=text, score=0.95)

    answer = [item(296, 297, 88, 30, "Bakery"), item(580, 40, 50, 20, "EXIT")]  # the reread word, a new one
    merged = plan.merged(Prediction(texts=answer, boxes=[t.box for t in answer]))
    assert sorted(t.text for t in merged.texts) == ["Bakery", "EXIT", "HOTEL"]
    assert len(merged.boxes) == 3


def test_a_word_lost_in_view_is_looked_for_again_where_it_was() -> None:
    difference = steady()  # nothing changed, nothing uncovered
    lost = np.array([[300, 200], [380, 200], [380, 230], [300, 230]], np.float32)
    assert plan_regions(WIDTH, HEIGHT, [], difference) is None  # nothing to send: the caller sends it whole
    plan = plan_regions(WIDTH, HEIGHT, [], difference, [lost])
    assert plan is not None and len(plan.crops) == 1 and not plan.crops[0].read
    crop = plan.crops[0]
    assert crop.x <= 300 and crop.y <= 200 and crop.x + crop.width >= 380 and crop.y + crop.height >= 230
    assert plan.share < 0.2
