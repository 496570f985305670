"""The region plan: which parts of a key frame go, which words are read again, which stay home."""

from __future__ import annotations

import numpy as np

from offload_client.region_plan import (
    BLOCK,
    FIND_MARGIN,
    LOOK_BASE,
    READ_QUALITY,
    REFIND_FRAMES,
    WHOLE_SHARE,
    layered,
    plan_regions,
)
from offload_client.tracking import Track
from offload_core.regions import MAX_REGIONS, check_regions, region_request
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
    # The tracker takes the carried word as no new reading, on a box as old as it was; the rest as found now.
    seen = {t.text: plan.seen(np.asarray(t.box.points, np.float32), t.text, t.score) for t in merged.texts}
    assert (seen["HOTEL"].age, seen["HOTEL"].read_now) == (kept.frames_tracked, False)
    assert (seen["EXIT"].age, seen["EXIT"].read_now) == (0, True)


def test_a_word_carried_too_long_is_found_again() -> None:
    # A tracked box drifts off a small word (real photos, seed 7): after REFIND_FRAMES the server finds it anew.
    fresh, stale = track(0, 100, 100, 60, 16, "Kiosk", 0.97), track(1, 400, 300, 60, 16, "EXIT", 0.97)
    stale.frames_tracked = REFIND_FRAMES
    plan = plan_regions(WIDTH, HEIGHT, [fresh, stale], steady())
    assert plan is not None and [c.read for c in plan.crops] == [False]
    crop = plan.crops[0]
    assert crop.quality == READ_QUALITY  # to be read, not only found
    assert crop.x <= 400 and crop.y <= 300 and crop.x + crop.width >= 460 and crop.y + crop.height >= 316
    assert not (crop.x <= 100 <= crop.x + crop.width and crop.y <= 100 <= crop.y + crop.height)


def test_a_word_cut_by_a_crops_edge_is_found_again_whole() -> None:
    # Real photos, seed 8: "Plaza" ran past a new area's crop and read "Pla" on three key frames.
    difference = steady()
    difference[:, 56:] = np.inf  # a strip at the right edge is new
    plan = plan_regions(WIDTH, HEIGHT, [], difference)
    assert plan is not None
    [strip] = plan.crops
    cut = np.array([[strip.x, 100], [strip.x + 30, 100], [strip.x + 30, 120], [strip.x, 120]], np.float32)
    inside = cut + np.float32([40, 200])
    at_frame_edge = np.array([[600, 300], [WIDTH, 300], [WIDTH, 320], [600, 320]], np.float32)
    assert plan.seen(cut, "Pla", 0.9).age == REFIND_FRAMES  # found whole at the next key frame
    assert plan.seen(inside, "EXIT", 0.9).age == 0
    assert plan.seen(at_frame_edge, "BUS", 0.9).age == 0  # the frame's own edge cuts nothing we could send
    pla = track(0, strip.x, 100, 30, 20, "Pla", 0.9)
    pla.frames_tracked = REFIND_FRAMES
    again = plan_regions(WIDTH, HEIGHT, [pla], steady())
    assert again is not None and len(again.crops) == 1
    crop = again.crops[0]
    assert crop.x <= strip.x - 20 and crop.x + crop.width >= strip.x + 30 + 20  # room for the rest of it


def test_a_word_lost_in_view_is_looked_for_again_where_it_was() -> None:
    difference = steady()  # nothing changed, nothing uncovered
    lost = np.array([[300, 200], [380, 200], [380, 230], [300, 230]], np.float32)
    assert plan_regions(WIDTH, HEIGHT, [], difference) is None  # nothing to send: the caller sends it whole
    plan = plan_regions(WIDTH, HEIGHT, [], difference, [lost])
    assert plan is not None and len(plan.crops) == 1 and not plan.crops[0].read
    crop = plan.crops[0]
    assert crop.x <= 300 and crop.y <= 200 and crop.x + crop.width >= 380 and crop.y + crop.height >= 230
    assert plan.share < 0.2


def box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(points=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)])


def test_a_look_is_the_frame_coarse_then_a_sharp_crop_on_the_jpeg_blocks_around_each_word_found() -> None:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    plan = layered(WIDTH, HEIGHT, [box(100, 200, 300, 240), box(630, 470, 639, 479)])
    base, word, corner = plan.crops
    assert (base.x, base.y, base.width, base.height) == (0, 0, WIDTH, HEIGHT)
    assert (base.quality, base.scale) == LOOK_BASE and not base.read
    # 40 px high: 12 px around it on every side (88..312, 188..252), then out to the 16 px blocks.
    assert (word.x, word.y, word.width, word.height) == (80, 176, 240, 80)
    assert word.quality == READ_QUALITY and not word.read  # found and read by the server, sharp
    assert all(c.x % BLOCK == 0 and c.y % BLOCK == 0 for c in plan.crops)
    assert corner.x + corner.width <= WIDTH and corner.y + corner.height <= HEIGHT
    assert plan.share == LOOK_BASE[1] ** 2 + (word.area + corner.area) / (WIDTH * HEIGHT)
    check_regions(region_request("text-spotter", 0, frame, plan.crops, 1000.0)[0], WIDTH * HEIGHT)  # a server takes it
    # A word at a sharp crop's edge is not cut: the coarse base holds the rest of the frame.
    at_edge = np.array([[80, 190], [130, 190], [130, 210], [80, 210]], np.float32)
    assert plan.seen(at_edge, "EXIT", 0.9).age == 0


def test_a_frame_full_of_words_stays_within_the_regions_a_request_may_carry() -> None:
    boxes = [box(x, y, x + 20, y + 8) for x in range(0, 600, 40) for y in range(0, 460, 20)]
    assert len(layered(WIDTH, HEIGHT, boxes).crops) == MAX_REGIONS


def test_big_words_stop_before_the_crops_cover_more_than_a_request_may() -> None:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    crops = layered(WIDTH, HEIGHT, [box(10, 10, 630, 470)] * 5).crops  # each crop is the whole frame
    assert len(crops) == 2  # the base and one: a third would cover 3x the frame
    check_regions(region_request("text-spotter", 0, frame, crops, 1000.0)[0], WIDTH * HEIGHT)
