"""Carrying answers from frame to frame: sparse optical flow inside each box, and a robust motion fit.

The building block of continuous mode (answers at camera rate between inferences), after Glimpse
(SenSys'15) and Liu et al. (MobiCom'19). Each track keeps up to `max_points` corners found inside
its box. On every frame, pyramidal Lucas-Kanade moves them; a point survives only if flowing it
back lands within `fb_max_px` of where it started (forward-backward check); a similarity transform
(shift, scale, rotation) fitted to the survivors with RANSAC moves the box. A track that keeps too
few points, or whose box leaves the frame, is dropped rather than drawn in the wrong place.
Confidence follows the share of points that keep following the fit, so a caller can ask for a fresh
inference before a box drifts.

Example:
    >>> tracker = Tracker()
    >>> tracks = tracker.seed(gray_0, [(quad, "EXIT", 0.98)])          # doctest: +SKIP
    >>> moved = tracker.step(gray_1)                                    # doctest: +SKIP
    >>> moved[0].text, moved[0].quad.round(1), moved[0].confidence       # doctest: +SKIP
    ('EXIT', array([[105.,  47.], ...]), 0.97)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from offload_core.engine.geometry import bounds, rect_iou

# Lucas-Kanade: a 21-pixel window over 3 pyramid levels follows up to ~60 px of motion per frame.
WINDOW, LEVELS = (21, 21), 3
STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
# Each point's flow starts from a guess of where it went (by default, where it was).
FROM_GUESS = cv2.OPTFLOW_USE_INITIAL_FLOW
# Two frames this different (mean absolute difference of 64x36 thumbnails, 0-255) are a cut, not motion.
CUT_DIFFERENCE = 40.0


@dataclass
class Track:
    """One answer carried forward: its box (4x2, clockwise from top-left), text and how sure we still are."""

    track_id: int
    quad: np.ndarray
    text: str = ""
    score: float = 0.0
    confidence: float = 1.0  # 1 when seeded by an inference; falls as points stop following the box
    frames_tracked: int = 0  # frames since a detector found its box
    reads: int = 1  # inferences whose reading of it was taken (recognise once per track)
    read_area: float = 0.0  # the box's area when its text was last read
    # Each reading's summed scores, over the inferences that read this word from views of about this size:
    # the text shown is the one read most surely, most often (one confident misreading is outvoted).
    votes: dict[str, float] = field(default_factory=dict)
    read_now: bool = True  # the inference behind it read its text (False: carried from an earlier one)
    points: np.ndarray = field(default_factory=lambda: np.empty((0, 1, 2), np.float32), repr=False)


class Seen(NamedTuple):
    """What an inference says of one thing to track."""

    quad: np.ndarray
    text: str
    score: float
    age: int = 0  # frames since a detector found this box (a region plan's carried word keeps its own)
    read_now: bool = True  # the inference read `text` (False: carried, as the device tracked it)


class Tracker:
    """Seeds tracks from an inference, then moves them frame by frame; see the module docstring."""

    def __init__(
        self, max_points: int = 24, min_points: int = 4, min_share: float = 0.3, fb_max_px: float = 1.0
    ) -> None:
        self.max_points = max_points
        self.min_points = min_points
        self.min_share = min_share  # of a box's points that must follow its fit, or the track is lost
        self.fb_max_px = fb_max_px
        self.tracks: list[Track] = []
        self.scene: Track | None = None  # the whole view, when watched (`watch_scene`)
        # Boxes of tracks lost in view since the last inference (not those that left the frame), moved with
        # the view: where a word was, so the next key frame can look there again.
        self.lost: list[np.ndarray] = []
        self.cut = False  # the last step saw a cut
        self.motion_px: float | None = None  # the last step's median point motion (None: nothing to measure)
        self._previous: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        self._next_id = 0

    def seed(self, gray: np.ndarray, items: list[Seen] | list[tuple[np.ndarray, str, float]]) -> list[Track]:
        """Start over from an inference on `gray`: one track per (quad, text, score[, age, read_now]); see `Seen`.

        A new box that overlaps an old track (IoU ≥ 0.5) keeps that track's id, so an app can tell a
        word it already shows from a new one.
        """
        old = self.tracks
        self.tracks, self.lost = [], []
        for item in items:
            seen = Seen(*item)
            quad = np.asarray(seen.quad, np.float32).reshape(4, 2)
            same = max(old, key=lambda t: box_iou(t.quad, quad), default=None)
            if same is not None and box_iou(same.quad, quad) >= 0.5:
                track_id = same.track_id
                old.remove(same)
            else:
                track_id, self._next_id = self._next_id, self._next_id + 1
            text, score = seen.text, seen.score
            track = Track(track_id, quad, text, score, frames_tracked=seen.age, read_area=area(quad),
                          votes={text: score} if text else {}, read_now=seen.read_now)  # fmt: skip
            track.points = self._corners(gray, quad)
            self.tracks.append(track)
        self._previous, self._thumb = gray, thumbnail(gray)
        return list(self.tracks)

    def adopt(self, newer: Tracker, reread_growth: float = 1.5, low_score: float = 0.8) -> list[Track]:
        """Take over `newer`'s tracks (a later inference, tracked to the same frame as this one).

        A new track over one of ours (IoU >= 0.5) keeps our id. Its reading replaces ours when ours was
        unsure (score < `low_score`) or missing, or the new crop is clearly larger (area x `reread_growth`).
        Otherwise it is a vote: the word shows the text with the highest summed score over the readings.
        So a word is not flipped back and forth by every key frame, and one confident misreading (a
        recognizer's "Plaform" at 0.98) gives way once two key frames read "Platform" at 0.95.
        """
        old = list(self.tracks)
        for track in newer.tracks:
            same = max(old, key=lambda t: box_iou(t.quad, track.quad), default=None)
            if same is None or box_iou(same.quad, track.quad) < 0.5:
                track.track_id, self._next_id = self._next_id, self._next_id + 1
                continue
            old.remove(same)
            track.track_id = same.track_id
            if same.score < low_score or not same.text or area(track.quad) >= reread_growth * same.read_area:
                track.reads = same.reads + 1
                continue
            fresh = bool(track.text) and track.read_now  # a region plan's carried word is no new reading
            track.votes = dict(same.votes or {same.text: same.score})
            track.reads = same.reads + fresh
            if fresh:
                track.votes[track.text] = track.votes.get(track.text, 0.0) + track.score
            if not fresh or max(track.votes, key=track.votes.__getitem__) == same.text:
                # Our reading stands (read again the same: at the surer of the two scores).
                track.score = max(same.score, track.score) if track.text == same.text else same.score
                track.text, track.read_area = same.text, same.read_area
        self.tracks, self._previous, self._thumb, self.cut = newer.tracks, newer._previous, newer._thumb, newer.cut
        self.lost = newer.lost
        return list(self.tracks)

    @property
    def thumb(self) -> np.ndarray | None:
        """The thumbnail of the frame the tracks are on (made once per frame, for cheap comparisons)."""
        return self._thumb

    def watch_scene(self, gray: np.ndarray, max_points: int = 48) -> None:
        """Track the whole view of `gray` too, as `scene` (not one of `tracks`): where it is later tells
        how far the camera moved, zoomed or turned since. It shares the tracks' optical flow."""
        height, width = gray.shape[:2]
        self.scene = Track(-1, frame_quad(width, height))
        self.scene.points = self._corners(gray, self.scene.quad, max_points)
        self._previous, self._thumb = gray, thumbnail(gray)

    def step(self, gray: np.ndarray, guess: np.ndarray | None = None) -> list[Track]:
        """Move every track to `gray`, the next frame; drop those that cannot follow. A cut drops them all
        (and sets `cut`).

        `guess`: how the view moved since the last frame (a 2x3 similarity), when the caller knows it: each
        point's flow starts there, so one step spans many frames (`Continuous` lands a late answer this
        way). The caller then vouches there was no cut between.
        """
        previous, self._previous = self._previous, gray
        thumb, self._thumb = self._thumb, thumbnail(gray)
        # A new frame size (the phone turned, the app switched cameras) is a cut too: nothing can follow.
        resized = previous is not None and previous.shape != gray.shape
        self.cut = resized or (guess is None and thumb is not None and cut_between(thumb, self._thumb))
        self.motion_px = None
        moving = self.tracks + ([self.scene] if self.scene is not None else [])
        if previous is None or self.cut or not moving:
            self.tracks, self.scene, self.lost = [], None, []
            return []
        starts = [t.points for t in moving]
        counts = [len(p) for p in starts]
        if sum(counts) == 0:
            self.tracks, self.scene, self.lost = [], None, []
            return []
        view = None if self.scene is None else self.scene.quad
        p0 = np.concatenate(starts).astype(np.float32)
        start = p0.copy() if guess is None else (p0 @ guess[:, :2].T + guess[:, 2]).astype(np.float32)
        p1, ok, _ = cv2.calcOpticalFlowPyrLK(
            previous, gray, p0, start, winSize=WINDOW, maxLevel=LEVELS, criteria=STOP, flags=FROM_GUESS
        )
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(
            gray, previous, p1, p0.copy(), winSize=WINDOW, maxLevel=LEVELS, criteria=STOP, flags=FROM_GUESS
        )
        returned = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1) < self.fb_max_px  # forward-backward check
        good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & returned
        if good.sum() >= self.min_points:
            self.motion_px = float(np.median(np.linalg.norm((p1 - p0).reshape(-1, 2)[good], axis=1)))
        kept, lost, at = [], [], 0
        height, width = gray.shape[:2]
        for track, n in zip(moving, counts, strict=True):
            mine = good[at : at + n]
            src, dst = p0[at : at + n][mine], p1[at : at + n][mine]
            at += n
            was = track.quad
            if self._follow(track, src, dst, n, gray):
                kept.append(track)
            elif track is not self.scene:
                lost.append(was)
        self.scene = kept.pop() if self.scene is not None and kept and kept[-1] is self.scene else None
        self.tracks = kept
        self.lost = self._moved_with_view(self.lost + lost, view, width, height)
        return list(kept)

    def _moved_with_view(
        self, boxes: list[np.ndarray], view: np.ndarray | None, width: int, height: int
    ) -> list[np.ndarray]:
        """`boxes` (on the previous frame) moved as the view moved this step (`view`: where it was), those
        still in the frame; none when the view is not watched (nothing says where they went)."""
        if not boxes or view is None or self.scene is None:
            return []
        motion, _ = cv2.estimateAffinePartial2D(view, self.scene.quad)
        if motion is None:
            return []
        moved = [(q @ motion[:, :2].T + motion[:, 2]).astype(np.float32) for q in boxes]
        return [q for q in moved if inside(q, width, height)]

    def _follow(self, track: Track, src: np.ndarray, dst: np.ndarray, n: int, gray: np.ndarray) -> bool:
        """Move `track` by the motion its points agree on; False when it is lost."""
        if len(src) < self.min_points:
            return False  # too little left to trust: lost
        motion, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if motion is None:
            return False
        track.quad = (track.quad @ motion[:, :2].T + motion[:, 2]).astype(np.float32)
        height, width = gray.shape[:2]
        if not inside(track.quad, width, height):
            return False  # left the frame: dropped, not drawn at the edge
        survived = inliers.ravel() == 1
        if survived.sum() < max(self.min_points, self.min_share * n):
            return False  # the few points that agree are chance (a cut, an occluder): lost
        # This frame's share of points that followed the fit, smoothed: one bad frame halves it at most.
        track.confidence = 0.5 * track.confidence + 0.5 * float(survived.sum()) / max(1, n)
        track.frames_tracked += 1
        track.points = dst[survived].reshape(-1, 1, 2)
        if len(track.points) < self.max_points // 2 and track.track_id >= 0:
            track.points = self._corners(gray, track.quad)  # refill from the box where it is now
        return True

    def _corners(self, gray: np.ndarray, quad: np.ndarray, most: int | None = None) -> np.ndarray:
        """Up to `max_points` strong corners inside the box (Shi-Tomasi), as an Nx1x2 float32 array.

        Searched in the box's bounding rectangle only: the cost follows the box, not the frame.
        """
        height, width = gray.shape[:2]
        x1, y1, x2, y2 = bounds(quad)
        left, top = max(0, int(x1)), max(0, int(y1))
        right, bottom = min(width, int(np.ceil(x2)) + 1), min(height, int(np.ceil(y2)) + 1)
        if right - left < 3 or bottom - top < 3:
            return np.empty((0, 1, 2), np.float32)
        mask = np.zeros((bottom - top, right - left), np.uint8)
        cv2.fillConvexPoly(mask, np.round(quad - (left, top)).astype(np.int32), 255)
        roi = gray[top:bottom, left:right]
        found = cv2.goodFeaturesToTrack(roi, most or self.max_points, 0.01, 3, mask=mask, blockSize=5)
        if found is None:
            return np.empty((0, 1, 2), np.float32)
        return (found + np.array([left, top], np.float32)).astype(np.float32)


def frame_quad(width: int, height: int) -> np.ndarray:
    """The whole frame as a box (4x2, clockwise from top-left): what `Tracker.scene` starts as."""
    return np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)


def view_motion(view: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """How the camera moved since the scene started: the 2x3 similarity taking that frame onto this one,
    whose whole view is now at `view` (the scene's quad); None when it cannot be fitted."""
    motion, _ = cv2.estimateAffinePartial2D(frame_quad(width, height), view)
    return motion


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """A 64x36 float summary of a frame, to compare frames cheaply."""
    return cv2.resize(gray, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)


def cut_between(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two frames' thumbnails differ too much to be motion of one scene."""
    return float(np.abs(a - b).mean()) > CUT_DIFFERENCE


def inside(quad: np.ndarray, width: int, height: int, share: float = 0.5) -> bool:
    """Whether at least `share` of the box's bounding rectangle lies in the frame."""
    x1, y1, x2, y2 = bounds(quad)
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    w = max(0.0, min(x2, width) - max(x1, 0.0))
    h = max(0.0, min(y2, height) - max(y1, 0.0))
    return w * h / area >= share


def area(quad: np.ndarray) -> float:
    """The area of a box's bounding rectangle."""
    x1, y1, x2, y2 = bounds(quad)
    return max(0.0, (x2 - x1) * (y2 - y1))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes' bounding rectangles."""
    return rect_iou(bounds(a), bounds(b))
