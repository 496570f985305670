"""bench-roi's layered candidate: the base first, a sharp crop around each box, a request a server accepts."""

from __future__ import annotations

import numpy as np
import pytest

from bench.roi import LAYER_BASE, layered_crops
from offload_core.regions import MAX_REGIONS, check_regions, region_request
from offload_core.types import Box

pytestmark = pytest.mark.unit


def box(x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(points=[(x1, y1), (x2, y1), (x2, y2), (x1, y2)])


def test_the_base_comes_first_and_each_box_gets_a_sharp_crop_inside_the_frame() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    crops = layered_crops(frame, [box(100, 200, 300, 240), box(630, 470, 639, 479)])
    base = crops[0]
    assert (base.x, base.y, base.width, base.height) == (0, 0, 640, 480)
    assert (base.quality, base.scale) == LAYER_BASE and not base.read
    word = crops[1]  # 40 px high: 12 px around it on every side
    assert (word.x, word.y, word.width, word.height) == (88, 188, 224, 64) and word.quality == 90
    corner = crops[2]
    assert corner.x + corner.width <= 640 and corner.y + corner.height <= 480
    check_regions(region_request("text-spotter", 0, frame, crops, 1000.0)[0], 640 * 480)  # a server takes it


def test_a_frame_full_of_boxes_stays_within_the_regions_a_request_may_carry() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    boxes = [box(x, y, x + 20, y + 8) for x in range(0, 600, 40) for y in range(0, 460, 20)]
    assert len(layered_crops(frame, boxes)) == MAX_REGIONS


def test_big_boxes_stop_before_the_crops_cover_more_than_a_request_may() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    crops = layered_crops(frame, [box(10, 10, 630, 470)] * 5)  # each crop is the whole frame
    assert len(crops) == 2  # the base and one: a third would cover 3x the frame
    check_regions(region_request("text-spotter", 0, frame, crops, 1000.0)[0], 640 * 480)
