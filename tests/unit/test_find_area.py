"""Where a region request's model runs: the FIND regions' rectangle, grown to quarters of the frame."""

from __future__ import annotations

import numpy as np
import pytest

from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.regions import canvas, find_area, find_parts, shifted
from offload_core.types import Box, Prediction, TextItem

pytestmark = pytest.mark.unit


def request_of(*rects: tuple[int, int, int, int], read: tuple[int, int, int, int] | None = None) -> pb.InferRequest:
    request = pb.InferRequest(model="m", frame_width=640, frame_height=480)
    for x, y, w, h in rects:
        pixels = np.full((h, w, 3), 200, np.uint8)
        request.regions.add(image=pb.EncodedImage(data=encode_jpeg(pixels), format="jpeg"), x=x, y=y, width=w,
                            height=h, stage=pb.Region.FIND)  # fmt: skip
    if read is not None:
        x, y, w, h = read
        request.regions.add(x=x, y=y, width=w, height=h, stage=pb.Region.READ)
    return request


def test_a_small_crop_runs_in_a_quarter_of_the_frame_around_it() -> None:
    assert find_area(request_of((300, 200, 40, 30))) == (240, 155, 160, 120)
    assert find_area(request_of((620, 470, 20, 10))) == (480, 360, 160, 120)  # kept inside the frame


def test_crops_far_apart_run_in_the_rectangle_holding_both_and_read_regions_do_not_count() -> None:
    assert find_area(request_of((0, 0, 100, 50), (500, 0, 140, 50), read=(0, 300, 600, 100))) == (0, 0, 640, 120)
    assert find_area(request_of((0, 0, 640, 480))) == (0, 0, 640, 480)
    assert find_area(request_of(read=(0, 0, 10, 10))) is None


def test_the_part_holds_each_crop_where_it_is_in_the_frame_and_black_elsewhere() -> None:
    rebuilt = canvas(request_of((300, 200, 40, 30)), 10**7)
    assert rebuilt is not None
    part, origin = rebuilt
    assert origin == (240, 155) and part.shape == (120, 160, 3)
    x, y = 300 - 240, 200 - 155
    assert abs(int(part[y + 15, x + 20, 0]) - 200) <= 2  # the crop's pixels
    assert part[:y].max() == 0 and part[:, :x].max() == 0  # black around it


def test_answers_on_a_part_move_to_the_frame() -> None:
    box = Box(points=[(1, 2), (11, 2), (11, 7), (1, 7)], label="text")
    moved = shifted(Prediction(boxes=[box], texts=[TextItem(box=box, text="EXIT", score=0.9)]), 240, 155)
    assert moved.boxes[0].points[0] == (241, 157) and moved.texts[0].box.points[2] == (251, 162)
    assert moved.texts[0].text == "EXIT"


def test_crops_apart_run_as_parts_and_crops_whose_parts_meet_run_as_one() -> None:
    apart = find_parts(request_of((0, 0, 120, 480), (520, 0, 120, 480), read=(300, 200, 40, 20)))
    assert [find_area(p) for p in apart] == [(0, 0, 160, 480), (480, 0, 160, 480)]
    assert all(r.stage == pb.Region.FIND for p in apart for r in p.regions)  # READ regions are not the parts'
    assert [(r.x, r.width) for r in apart[1].regions] == [(520, 120)]
    near = find_parts(request_of((0, 0, 120, 100), (100, 50, 100, 100)))
    assert len(near) == 1 and len(near[0].regions) == 2
    corners = find_parts(request_of((0, 0, 100, 80), (540, 0, 100, 80), (0, 400, 100, 80), (540, 400, 100, 80)))
    assert len(corners) == 4
