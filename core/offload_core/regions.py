"""Region requests: crops of a frame instead of the whole of it, answered in the frame's coordinates.

A slow uplink should carry words, not walls (DDS, SIGCOMM'20; AccMPEG, MLSys'22). A request may
carry crops (`pb.Region`) instead of an image: FIND crops are new area, pasted onto a blank frame
where the model runs as on any frame; READ crops are known lines of text, read by the recognizer
alone. Both sides share this module: the client builds requests with `region_request`, the server
checks them with `check_regions` and rebuilds the frame with `canvas` and `read_crops`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import cv2
import numpy as np

from offload_core.engine.image import ImageError, decode_image, encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.types import Box, Prediction

# What a server accepts beyond whole frames (`InferResponse.accepts`, `ModelInfo.capabilities`).
REGIONS = "regions"
READ_REGIONS = "read-regions"
# A request carries at most this many regions, covering at most this many times the frame's area:
# beyond that, the whole frame is smaller and simpler.
MAX_REGIONS = 64
MAX_COVER = 2.0


@dataclass(frozen=True)
class Crop:
    """A rectangle of the frame to send: (x, y) its top-left corner, in pixels.

    `read`: a known line of text, for recognition only. `quality`: its JPEG quality. `scale` < 1
    sends it smaller (the server scales it back): enough to find text, not to read small words.
    """

    x: int
    y: int
    width: int
    height: int
    read: bool = False
    quality: int = 90
    scale: float = 1.0

    @property
    def area(self) -> int:
        return self.width * self.height


def region_request(
    model: str, frame_id: int, frame: np.ndarray, crops: list[Crop], deadline_ms: float
) -> tuple[pb.InferRequest, float]:
    """`crops` of `frame` as one region request, and how long the encoding took (ms)."""
    start = time.perf_counter()
    height, width = frame.shape[:2]
    request = pb.InferRequest(
        model=model, frame_id=frame_id, deadline_ms=int(deadline_ms), frame_width=width, frame_height=height
    )
    for crop in crops:
        pixels = frame[crop.y : crop.y + crop.height, crop.x : crop.x + crop.width]
        if crop.scale < 1.0:
            size = (max(1, round(crop.width * crop.scale)), max(1, round(crop.height * crop.scale)))
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        request.regions.add(
            image=pb.EncodedImage(data=encode_jpeg(pixels, crop.quality), format="jpeg"),
            x=crop.x, y=crop.y, width=crop.width, height=crop.height,
            stage=pb.Region.READ if crop.read else pb.Region.FIND,
        )  # fmt: skip
    return request, (time.perf_counter() - start) * 1000.0


def check_regions(request: pb.InferRequest, max_pixels: int) -> None:
    """ValueError saying which region is wrong and why, for a region request a server must refuse."""
    if request.WhichOneof("image") is not None:
        raise ValueError("the request sets both an image and `regions`; send one or the other")
    width, height = request.frame_width, request.frame_height
    if width == 0 or height == 0:
        raise ValueError(f"`regions` need the frame's size: frame_width={width}, frame_height={height}")
    if width * height > max_pixels:
        raise ValueError(f"the frame is {width}x{height}, over this server's {max_pixels} pixels")
    if len(request.regions) > MAX_REGIONS:
        raise ValueError(f"the request has {len(request.regions)} regions; at most {MAX_REGIONS}")
    for i, r in enumerate(request.regions):
        if r.width == 0 or r.height == 0:
            raise ValueError(f"region {i} has zero size ({r.width}x{r.height})")
        if r.x + r.width > width or r.y + r.height > height:
            raise ValueError(
                f"region {i} ({r.width}x{r.height} at x={r.x}, y={r.y}) reaches outside the {width}x{height} frame"
            )
        if not r.image.data:
            raise ValueError(f"region {i} has no image bytes")
    cover = sum(r.width * r.height for r in request.regions) / (width * height)
    if cover > MAX_COVER:
        raise ValueError(f"the regions cover {cover:.1f}x the frame (at most {MAX_COVER:g}x); send the frame")


def _pixels(i: int, region: pb.Region, max_pixels: int) -> np.ndarray:
    """Region `i`'s image at its size in the frame. ImageError: undecodable, or larger than its place."""
    try:
        image = decode_image(region.image.data, max_pixels)
    except ImageError as exc:
        raise ImageError(f"region {i}: {exc}") from None
    h, w = image.shape[:2]
    if w > region.width or h > region.height:
        raise ImageError(f"region {i}'s image is {w}x{h}, larger than its {region.width}x{region.height} in the frame")
    if (w, h) != (region.width, region.height):
        image = cv2.resize(image, (region.width, region.height), interpolation=cv2.INTER_LINEAR)
    return image


def find_area(request: pb.InferRequest) -> tuple[int, int, int, int] | None:
    """Where the model runs on a region request: the rectangle (x, y, w, h) holding its FIND regions,
    grown to quarters of the frame's sides (None: it has none).

    A model runs on that part of the frame alone, so a small crop costs the server little (a text
    detector's cost follows its input's area). Quarters keep the input shapes few: a GPU server plans
    each new shape once.
    """
    finds = [_rect(r) for r in request.regions if r.stage == pb.Region.FIND]
    return _area(finds, request.frame_width, request.frame_height) if finds else None


def find_parts(request: pb.InferRequest) -> list[pb.InferRequest]:
    """The request split where its FIND regions lie apart: one request per part of the frame, each with
    the FIND regions whose `find_area`s meet (and no READ regions). Two strips at opposite edges run as
    two small parts, not as the whole frame between them. One part: the request itself."""
    width, height = request.frame_width, request.frame_height
    groups = [[i] for i, r in enumerate(request.regions) if r.stage == pb.Region.FIND]
    areas = [_area([_rect(request.regions[i])], width, height) for (i,) in groups]
    joined = True
    while joined:
        joined = False
        for a, b in itertools.combinations(range(len(groups)), 2):
            if _meet(areas[a], areas[b]):
                groups[a] += groups.pop(b)
                areas.pop(b)
                areas[a] = _area([_rect(request.regions[i]) for i in groups[a]], width, height)
                joined = True
                break
    if len(groups) <= 1:
        return [request]
    bare = pb.InferRequest()
    bare.CopyFrom(request)
    del bare.regions[:]
    parts = []
    for group in groups:
        part = pb.InferRequest()
        part.CopyFrom(bare)
        part.regions.extend(request.regions[i] for i in sorted(group))
        parts.append(part)
    return parts


def _rect(region: pb.Region) -> tuple[int, int, int, int]:
    return region.x, region.y, region.width, region.height


def _area(rects: list[tuple[int, int, int, int]], width: int, height: int) -> tuple[int, int, int, int]:
    """The rectangle (x, y, w, h) holding `rects`, grown to quarters of the frame's sides."""
    x1, x2 = _quarters(min(x for x, _, _, _ in rects), max(x + w for x, _, w, _ in rects), width)
    y1, y2 = _quarters(min(y for _, y, _, _ in rects), max(y + h for _, y, _, h in rects), height)
    return x1, y1, x2 - x1, y2 - y1


def _meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two rectangles (x, y, w, h) overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _quarters(start: int, end: int, side: int) -> tuple[int, int]:
    """[start, end) grown to a whole number of quarters of `side`, kept inside [0, side)."""
    quarters = min(4, -(-4 * (end - start) // side))  # ceil
    size = min(side, -(-quarters * side // 4))
    start = max(0, min(start - (size - (end - start)) // 2, side - size))
    return start, start + size


def canvas(request: pb.InferRequest, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The part of the frame its FIND regions rebuild on black (`find_area`), and where that part's
    top-left corner is in the frame (None: it has none); ImageError."""
    area = find_area(request)
    if area is None:
        return None
    x, y, width, height = area
    part = np.zeros((height, width, 3), np.uint8)
    for i, region in enumerate(request.regions):
        if region.stage == pb.Region.FIND:
            part[region.y - y : region.y - y + region.height, region.x - x : region.x - x + region.width] = _pixels(
                i, region, max_pixels
            )
    return part, (x, y)


def shifted(prediction: Prediction, dx: float, dy: float) -> Prediction:
    """`prediction` made on a part of a frame whose top-left corner is at (dx, dy), in the frame's coordinates."""
    if dx == 0 and dy == 0:
        return prediction

    def move(box: Box) -> Box:
        return box.model_copy(update={"points": [(x + dx, y + dy) for x, y in box.points]})

    texts = [t.model_copy(update={"box": move(t.box)}) for t in prediction.texts]
    return prediction.model_copy(update={"boxes": [move(b) for b in prediction.boxes], "texts": texts})


def read_crops(request: pb.InferRequest, max_pixels: int) -> list[tuple[pb.Region, np.ndarray]]:
    """The request's READ regions with their pixels; ImageError."""
    return [(r, _pixels(i, r, max_pixels)) for i, r in enumerate(request.regions) if r.stage == pb.Region.READ]


def rect_quad(region: pb.Region) -> list[tuple[float, float]]:
    """A region's rectangle as a box's four corners, clockwise from top-left."""
    x1, y1, x2, y2 = float(region.x), float(region.y), float(region.x + region.width), float(region.y + region.height)
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
