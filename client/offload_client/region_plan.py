"""What of a key frame to send: the new area and the words that need reading, not the walls.

Continuous mode knows, at each key frame, what the last answer already covers: where its view is
now (the scene track), which parts of it changed since (aligned thumbnails), and every tracked word
with its reading. So a key frame need not cross the link whole (DDS, SIGCOMM'20; Liu et al.,
MobiCom'19): the plan sends

- FIND crops: the area the last answer does not cover (uncovered by the camera's motion, or changed
  in place: a sign uncovered, a person passing), where new text may be; the model runs on them as
  on a frame;
- READ crops: tracked words whose reading is missing, unsure, or from a clearly smaller view, at
  high quality, for the recognizer alone (reading needs sharp pixels; finding does not);
- nothing for the rest: its words are carried into the key frame's answer as they are tracked.

When most of the view is new (a cut, a pan onto a new wall) the whole frame goes, as a look: small
and coarse, to find text in, plus sharp crops where the device's own text detector finds words, to
read them (`layered`: DDS's two rounds in one request, the device's detector standing in for the
server's first answer). Without a device detector the look is the whole frame at `LOOK_QUALITY`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from offload_client.tracking import Seen, Track, area, box_iou
from offload_core.engine.geometry import bounds, centre_inside
from offload_core.engine.tasks.base import Task
from offload_core.engine.tasks.text_spotter import TextSpotter
from offload_core.regions import MAX_COVER, MAX_REGIONS, Crop
from offload_core.types import Box, Prediction, TextItem

# Where the device finds text in a frame: boxes in the frame's pixels.
TextFinder = Callable[[np.ndarray], list[Box]]

# The grid on which new area is judged (cells of ~40 px on a VGA frame), and how much (0-255) an
# aligned cell must differ to count as changed: the same measure as the key-frame trigger's.
GRID = (16, 12)
CELL_CHANGED = 16.0
# More new area than this, and the whole frame goes (one JPEG of it beats many crops).
WHOLE_SHARE = 0.75
# FIND crops grow by this much (px) left and right, and above and below: a word across a cell's edge
# must arrive whole (words are wide), and so must every tracked word a crop touches.
FIND_MARGIN = (48, 16)
# A tracked word is read again when its reading scored below this, or its box grew this much since.
READ_BELOW = 0.8
READ_GROWTH = 1.5
READ_QUALITY = 90
# A key frame that must go whole (a cut, a view that moved on) goes at this JPEG quality at most, when
# the server reads regions: finding text survives it, and the words it reads poorly are read again from
# sharp crops by the next key frame (DDS's two rounds, SIGCOMM'20).
LOOK_QUALITY = 35
# READ crops grow by this share of the word's height on every side (as the server's own reading does).
READ_MARGIN = 0.15
# After this many frames carried, a tracked word's box is found again (a sharp FIND crop around it): a small
# word on a textured wall slides off its box as the tracker's fit drifts (real photos, seed 7: a 15 px word,
# 6 px off in 10 frames).
REFIND_FRAMES = 5
# A word found within this many px of a FIND crop's edge inside the frame may be cut: it is found again at the
# next key frame, from a sharp crop grown left and right by this share of its height (a letter is ~0.6).
CUT_PX = 3
REFIND_WIDER = 1.5
# A look with the device's detector (`layered`): the frame at this JPEG quality and scale, to find what the
# device missed; each word the device finds goes sharp (READ_QUALITY), grown by this share of its height on
# every side and by these px (x, y) at least. Chosen on the real-photo sample's seeds 5, 8 and 12 (bench-roi).
LOOK_BASE = (20, 0.5)
FOUND_MARGIN = 0.3
FOUND_PAD = (8.0, 6.0)
# The device's text detector made eager for it: long side (px), pixel and box thresholds. At its own 480 px it
# misses small words (bench-roi, real photos: -5 to -25 points); 800 px costs ~70 ms on a laptop core.
FINDER = (800, 0.15, 0.2)
# Sharp crops start and end on the JPEG's 16 px blocks (4:2:0): their pixels are then those of the whole frame
# at that quality. Cut mid-block, 11 px words read worse (real photos, seed 12: -1.1 points cut, +1.1 aligned).
BLOCK = 16


@dataclass
class RegionPlan:
    """A key frame's crops, and the tracked words its answer keeps where the crops say nothing."""

    crops: list[Crop]
    carried: list[Track]
    share: float  # of the frame's pixels sent (what the policy scales a whole frame's bytes by)
    # READ crops (x, y, w, h) -> the tracked word each one reads: its answer is put back on the word's box.
    reads: dict[tuple[int, int, int, int], Track] = field(default_factory=dict)
    # The whole view, to find text in: made `layered` where the device has a text detector.
    look: bool = False
    frame: tuple[int, int] = (0, 0)  # the frame's width and height (where a crop's edge is the frame's own)
    # After `merged`: the tracked words its answer gave back on their own boxes, and whether each was read now.
    _given: list[tuple[Track, bool]] = field(default_factory=list, init=False, repr=False)

    def merged(self, prediction: Prediction) -> Prediction:
        """The key frame's whole answer: the server's words (a READ crop's on its word's own box), and each
        carried word it did not answer for."""
        answered_rects = {_rect(b) for b in prediction.boxes} | {_rect(t.box) for t in prediction.texts}
        read = [track for rect, track in self.reads.items() if rect in answered_rects]
        prediction = prediction.model_copy(
            update={
                "texts": [self._on_word(t) for t in prediction.texts],
                "boxes": [self._on_word_box(b) for b in prediction.boxes],
            }
        )
        answered = [np.asarray(t.box.points, np.float32) for t in prediction.texts] + [
            np.asarray(b.points, np.float32) for b in prediction.boxes
        ]
        kept = [t for t in self.carried if all(box_iou(t.quad, q) < 0.3 for q in answered)]
        boxes = [Box(points=[(float(x), float(y)) for x, y in t.quad], score=t.score, label="text") for t in kept]
        texts = [TextItem(box=b, text=t.text, score=t.score) for b, t in zip(boxes, kept, strict=True) if t.text]
        self._given = [(t, True) for t in read] + [(t, False) for t in kept]
        return prediction.model_copy(update={"boxes": prediction.boxes + boxes, "texts": prediction.texts + texts})

    def _on_word_box(self, box: Box) -> Box:
        track = self.reads.get(_rect(box))
        if track is None:
            return box
        return box.model_copy(update={"points": [(float(x), float(y)) for x, y in track.quad]})

    def _on_word(self, item: TextItem) -> TextItem:
        return item.model_copy(update={"box": self._on_word_box(item.box)})

    def seen(self, quad: np.ndarray, text: str, score: float) -> Seen:
        """A word of the `merged` answer as the tracker should take it: a carried word keeps its box's age and
        is no new reading; a READ crop's is a new reading on an old box; the rest the server found now."""
        for track, read_now in self._given:
            if np.array_equal(track.quad, quad):
                return Seen(quad, text, score, track.frames_tracked, read_now)
        if self._cut(quad):  # found whole next key frame, from a sharp crop around it (`REFIND_FRAMES`)
            return Seen(quad, text, score, REFIND_FRAMES)
        return Seen(quad, text, score)

    def _cut(self, quad: np.ndarray) -> bool:
        """Whether a word found in a FIND crop touches one of its edges inside the frame: it may go on past it
        (real photos, seed 8: "Plaza" read "Pla" on three key frames, cut by a new area's crop)."""
        if self.look:
            return False  # a look's coarse base holds the whole frame
        x1, y1, x2, y2 = bounds(quad)
        width, height = self.frame
        for c in self.crops:
            if c.read or not centre_inside(quad, c.x, c.y, c.width, c.height):
                continue
            left, right = x1 <= c.x + CUT_PX and c.x > 0, x2 >= c.x + c.width - CUT_PX and c.x + c.width < width
            top, bottom = y1 <= c.y + CUT_PX and c.y > 0, y2 >= c.y + c.height - CUT_PX and c.y + c.height < height
            if left or right or top or bottom:
                return True
        return False


def _rect(box: Box) -> tuple[int, int, int, int]:
    """`box`'s bounding rectangle (x, y, w, h) in whole pixels: how a READ crop's answer is known."""
    x1, y1, x2, y2 = bounds(np.asarray(box.points, np.float32))
    return round(x1), round(y1), round(x2 - x1), round(y2 - y1)


def whole(width: int, height: int) -> RegionPlan:
    """The whole frame as one FIND region, at `LOOK_QUALITY` at most (see there): a look, which the uplink
    makes `layered` where the device has a text detector."""
    return RegionPlan([Crop(0, 0, width, height, quality=LOOK_QUALITY)], [], 1.0, look=True, frame=(width, height))


def layered(width: int, height: int, found: list[Box]) -> RegionPlan:
    """A look at the whole frame: the frame small and coarse (`LOOK_BASE`), then a sharp FIND crop around
    each box the device `found`, on the JPEG's blocks. The server pastes FIND crops in order, so it finds
    text everywhere and reads it where it is sharp. Within what a request may carry (`MAX_REGIONS`,
    `MAX_COVER`)."""
    quality, scale = LOOK_BASE
    crops = [Crop(0, 0, width, height, quality=quality, scale=scale)]
    for box in found:
        if len(crops) == MAX_REGIONS:
            break
        crop = _sharp_around(np.asarray(box.points, np.float32), width, height)
        covered = sum(c.area for c in crops) + crop.area
        if crop.width >= 4 and crop.height >= 4 and covered <= MAX_COVER * width * height:
            crops.append(crop)
    share = scale**2 + sum(c.area for c in crops[1:]) / (width * height)
    return RegionPlan(crops, [], share, look=True, frame=(width, height))


def _sharp_around(quad: np.ndarray, width: int, height: int, wider: float = FOUND_MARGIN) -> Crop:
    """A sharp FIND crop (`READ_QUALITY`) around a word's box, grown by `FOUND_MARGIN`/`FOUND_PAD` (left and
    right by `wider` of its height), on the JPEG's blocks: the server finds the word in it and reads it."""
    x1, y1, x2, y2 = bounds(quad)
    pad_x, pad_y = max(FOUND_PAD[0], wider * (y2 - y1)), max(FOUND_PAD[1], FOUND_MARGIN * (y2 - y1))
    left, top = max(0, int(x1 - pad_x)) // BLOCK * BLOCK, max(0, int(y1 - pad_y)) // BLOCK * BLOCK
    right = min(width, int(np.ceil((x2 + pad_x) / BLOCK)) * BLOCK)
    bottom = min(height, int(np.ceil((y2 + pad_y) / BLOCK)) * BLOCK)
    return Crop(left, top, right - left, bottom - top, quality=READ_QUALITY)


def text_finder(task: Task) -> TextFinder | None:
    """The device's own text detector made eager (`FINDER`), for `layered` looks; None when its model has
    no text detector (then a look is the whole frame at `LOOK_QUALITY`)."""
    if not isinstance(task, TextSpotter):
        return None
    detector = copy.copy(task.detector)  # its own settings; the same onnxruntime session
    detector.long_side, detector.thresh, detector.box_thresh = FINDER
    return lambda frame: detector.run(frame)[0].boxes


def needs_reading(track: Track) -> bool:
    """Whether a tracked word's reading is missing, unsure, or from a clearly smaller view of it."""
    return not track.text or track.score < READ_BELOW or area(track.quad) >= READ_GROWTH * track.read_area


def plan_regions(
    width: int, height: int, tracks: list[Track], difference: np.ndarray, lost: list[np.ndarray] | None = None
) -> RegionPlan | None:
    """The plan for a key frame, or None when the whole frame should go.

    `difference`: per pixel of a thumbnail of the frame, how much it differs from the last key frame's
    view aligned onto it (0-255), and inf where that view did not reach (uncovered). `lost`: boxes of
    words whose tracks were lost in view (a blur, an occluder): new area too, so they are found again.
    """
    cells = cv2.resize(np.minimum(difference, 255.0), GRID, interpolation=cv2.INTER_AREA)
    # Half a cell out of the last view makes it new; a hand's shake (a pixel) does not.
    uncovered = cv2.resize(np.isinf(difference).astype(np.float32), GRID, interpolation=cv2.INTER_AREA) > 0.5
    new = uncovered | (cells > CELL_CHANGED)
    cell_w, cell_h = width / GRID[0], height / GRID[1]
    for quad in lost or []:
        x1, y1, x2, y2 = bounds(quad)
        columns = slice(max(0, int(x1 / cell_w)), max(0, int(np.ceil(x2 / cell_w))))
        rows = slice(max(0, int(y1 / cell_h)), max(0, int(np.ceil(y2 / cell_h))))
        new[rows, columns] = True
    if new.mean() > WHOLE_SHARE:
        return None
    finds = [_take_whole(f, tracks, width, height) for f in _rectangles(new, cell_w, cell_h, width, height)]
    reads: list[Crop] = []
    refinds: list[Crop] = []
    carried: list[Track] = []
    read_words: dict[tuple[int, int, int, int], Track] = {}
    for track in tracks:
        track = replace(track)  # as it is now: the tracker moves its own on
        carried.append(track)
        x1, y1, x2, y2 = bounds(track.quad)
        if any(centre_inside(track.quad, *f) for f in finds):
            continue  # a FIND crop finds and reads it again, with what changed around it
        if track.frames_tracked >= REFIND_FRAMES:  # its box is found, and read, anew: all of it, if it was cut
            refinds.append(_sharp_around(track.quad, width, height, REFIND_WIDER))
            continue
        if not needs_reading(track):
            continue  # read well enough: nothing to send
        pad = READ_MARGIN * (y2 - y1) + 2
        left, top = max(0, int(x1 - pad)), max(0, int(y1 - pad))
        right, bottom = min(width, int(np.ceil(x2 + pad))), min(height, int(np.ceil(y2 + pad)))
        if right - left >= 4 and bottom - top >= 4:
            reads.append(Crop(left, top, right - left, bottom - top, read=True, quality=READ_QUALITY))
            read_words[(left, top, right - left, bottom - top)] = track
    crops = [Crop(x, y, w, h, quality=LOOK_QUALITY) for x, y, w, h in finds] + refinds + reads
    if not crops:
        return None  # nothing known to be new, nothing to read: the trigger saw something else (age): send it whole
    share = sum(c.area for c in crops) / (width * height)
    if share > WHOLE_SHARE:
        return None
    return RegionPlan(crops, carried, share, read_words, frame=(width, height))


def _take_whole(
    rect: tuple[int, int, int, int], tracks: list[Track], width: int, height: int
) -> tuple[int, int, int, int]:
    """`rect` grown to hold every tracked word it cuts (a word cut in two reads as two wrong ones)."""
    x, y, w, h = rect
    x2, y2 = x + w, y + h
    for track in tracks:
        bx1, by1, bx2, by2 = bounds(track.quad)
        if bx1 < x2 and x < bx2 and by1 < y2 and y < by2:
            x, y = min(x, max(0, int(bx1) - 4)), min(y, max(0, int(by1) - 4))
            x2, y2 = max(x2, int(np.ceil(bx2)) + 4), max(y2, int(np.ceil(by2)) + 4)
    x2, y2 = min(x2, width), min(y2, height)
    return x, y, x2 - x, y2 - y


def _rectangles(
    new: np.ndarray, cell_w: float, cell_h: float, width: int, height: int, fill: float = 0.7
) -> list[tuple[int, int, int, int]]:
    """The new cells as few rectangles (x, y, w, h) in frame pixels, each grown by FIND_MARGIN.

    Row by row, a run of new cells extends the rectangle above it while the rectangle stays at least
    `fill` new cells; so an L (a diagonal pan uncovers two edges) becomes two strips, not the frame.
    """
    rects: list[list[int]] = []  # x1, y1, x2, y2 in cells (exclusive ends), and the new cells inside
    for row in range(new.shape[0]):
        columns = np.flatnonzero(new[row])
        runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else []
        for run in runs:
            x1, x2 = int(run[0]), int(run[-1]) + 1
            for rect in rects:
                if rect[3] != row or rect[2] <= x1 or x2 <= rect[0]:
                    continue
                ux1, ux2 = min(rect[0], x1), max(rect[2], x2)
                if rect[4] + (x2 - x1) >= fill * (ux2 - ux1) * (row + 1 - rect[1]):
                    rect[0], rect[2], rect[3], rect[4] = ux1, ux2, row + 1, rect[4] + x2 - x1
                    break
            else:
                rects.append([x1, row, x2, row + 1, x2 - x1])
    out = []
    for x1, y1, x2, y2, _ in rects:
        left, top = max(0, int(x1 * cell_w) - FIND_MARGIN[0]), max(0, int(y1 * cell_h) - FIND_MARGIN[1])
        right = min(width, int(np.ceil(x2 * cell_w)) + FIND_MARGIN[0])
        bottom = min(height, int(np.ceil(y2 * cell_h)) + FIND_MARGIN[1])
        out.append((left, top, right - left, bottom - top))
    return out
