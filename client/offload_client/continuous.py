"""Continuous mode: every frame answered at once by tracking; inference runs on chosen key frames.

After Glimpse (SenSys'15) and Liu et al. (MobiCom'19). Each frame is tracked on the device
(`tracking.Tracker`), so its answer costs a few milliseconds whatever the link does. A frame
becomes a key frame (sent to the per-frame router, which picks device or server, privacy first)
only when it needs one: nothing shown yet, a cut, new content in view, the camera closer, a track
fading or lost, or an answer too old; and only one is in flight at a time.

An answer that comes back for key frame k while the camera is at k+n is tracked forward through
the cached frames k+1..k+n on the thread that waited for it (the active cache), then adopted by
the next frame: the app sees it within one frame of its arrival, in the right place.

This class holds the state and the decisions; the clients own the threads (sync) or tasks (async):
`arrive` and `show` on the app's call, `land` where the key frame's inference ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from offload_client.device_speed import DeviceSpeed
from offload_client.energy import EnergyMeter
from offload_client.region_plan import RegionPlan, needs_reading, plan_regions, whole
from offload_client.tracking import Seen, Track, Tracker, area, view_motion
from offload_core.types import Box, FrameResult, Source, TextItem, Timings, Where

# The client's modes: "per-frame" waits for an inference on every frame; "continuous" is this module.
MODES = ("per-frame", "continuous")
# Key frames: when the view holds this share of content the last key frame did not, or is this much
# closer (words larger: worth reading again), or an answer is this old, or a track this unsure.
NEW_CONTENT = 0.25
CLOSER = 1.4
MAX_AGE_MS = 2000.0
MIN_CONFIDENCE = 0.5
# The view differs this much (0-255) from the last key frame's, aligned: something entered or left it.
CHANGED = 16.0
# A frame moving faster than this (px per frame) is smeared: its key frame waits for a steadier one.
FAST_PX = 12.0
# Frames kept for tracking late answers forward: 3 s at 15 fps. An answer older than that lands on
# the frame where it arrives, tracked from the oldest frame kept.
CACHE_FRAMES = 45
# An answer that comes within this long of its frame's arrival is shown on that frame itself (fresh);
# a later one is tracked forward.
FRESH_BUDGET_MS = 30.0


def in_background() -> None:
    """Lower the calling thread's priority (Linux: nice +10), as a phone runs background work: the app's
    frame path (tracking) takes the core first when a key frame's inference shares it."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@dataclass
class KeyFrame:
    """A frame chosen for inference, and why."""

    frame_id: int
    image: np.ndarray
    arrived: float  # time.monotonic()
    reason: str
    # What of it to send, when a server takes regions (None: the whole frame).
    plan: RegionPlan | None = None


@dataclass
class _Landed:
    """An inference's answer, tracked forward to frame `at`."""

    tracker: Tracker
    key: KeyFrame
    result: FrameResult
    at: int


class Continuous:
    """The tracker, the frame cache and the key-frame choice of continuous mode; see the module docstring."""

    def __init__(
        self,
        model: str,
        device: DeviceSpeed,
        cache_frames: int = CACHE_FRAMES,
        regions: bool = True,
        energy: EnergyMeter | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.tracker = Tracker()  # its `scene` is the whole view at the last key frame: new content, zoom
        self._lock = threading.Lock()  # the cache and `_landed` are shared with the key frame's thread
        # Recent frames, for landing a late answer: (frame id, gray, and if the scene is watched: the frame
        # it started on, where that frame's view is on this one).
        self._cache: deque[tuple[int, np.ndarray, tuple[int, np.ndarray] | None]] = deque(maxlen=cache_frames)
        self._scene_from = -1  # the frame the tracker's `scene` started on
        self._landed: _Landed | None = None
        self._in_flight: KeyFrame | None = None
        self._shown: tuple[KeyFrame, FrameResult] | None = None  # the inference behind the tracks
        self._tracks_at_answer = 0
        self._key_thumb: np.ndarray | None = None  # the last key frame, small: what changed in view since
        self._moved_on: str | None = None  # why the view is not the last key frame's any more (a cut, a pan)
        self._gray: np.ndarray | None = None
        self._frame_id = -1
        self._arrived = 0.0
        self._key: KeyFrame | None = None  # this frame's, if it is one
        self._new: FrameResult | None = None  # an answer adopted on this frame: its uplink bytes count here
        self._work_ms = 0.0
        self._difference: np.ndarray | None = None  # this frame against the last key frame's view (`_differ`)
        self._regions = regions
        self._energy = energy or EnergyMeter()  # tracking is the device's work too

    def arrive(self, image: np.ndarray, arrived: float) -> KeyFrame | None:
        """Track the tracks to this frame and decide whether it is a key frame (returned, to infer)."""
        start = time.monotonic()
        with self.device.paying():
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            self._gray = gray
            self._frame_id += 1
            self._arrived = arrived
            self._new = None
            if not self._adopt(gray):
                self.tracker.step(gray)
            watched = self.tracker.scene is None
            if watched:  # the view moved on since the key frame; keep measuring motion from here
                if self._shown is not None and self._moved_on is None:
                    self._moved_on = "a cut" if self.tracker.cut else "new content: the view moved on"
                self.tracker.watch_scene(gray)
                self._scene_from = self._frame_id
            self._difference = None
            reason = None if self._in_flight is not None else self._why_key(gray, arrived)
            self._key = None
            if reason is not None:
                self._key = self._in_flight = KeyFrame(self._frame_id, image, arrived, reason, self._plan(gray))
                if not watched:
                    self.tracker.watch_scene(gray)  # the scene now starts at this key frame
                    self._scene_from = self._frame_id
                self._key_thumb = self.tracker.thumb
                self._moved_on = None
            scene = self.tracker.scene
            with self._lock:
                # Where the view of the frame the scene started on is now: an answer for it lands in one step.
                seen = (self._scene_from, scene.quad.copy()) if scene is not None else None
                self._cache.append((self._frame_id, gray, seen))
        self._work_ms = (time.monotonic() - start) * 1000
        return self._key

    def budget_s(self) -> float:
        """How long the app may still wait on this frame's key frame for a fresh answer."""
        return max(0.0, FRESH_BUDGET_MS / 1000 - (time.monotonic() - self._arrived))

    def show(self) -> FrameResult:
        """This frame's answer: the tracks where they are now (and any answer that landed meanwhile)."""
        start = time.monotonic()
        assert self._gray is not None, "arrive() first"
        with self.device.paying():
            self._adopt(self._gray)
        self._work_ms += (time.monotonic() - start) * 1000
        return self._result()

    def land(self, key: KeyFrame, result: FrameResult | None) -> None:
        """`key`'s inference ended: track its answer forward through the cached frames to the newest.

        Runs on the thread that waited for the inference; the app's next frame adopts it. `result`
        None: the inference raised; the next key frame may go.
        """
        try:
            if result is None or result.where == Where.NONE:
                return  # nothing answered (no device model, no server): keep what is shown
            newer = Tracker()
            with self.device.paying():
                gray = cv2.cvtColor(key.image, cv2.COLOR_BGR2GRAY)
                newer.seed(gray, _items(result, key.plan))
                at = key.frame_id
                height, width = gray.shape
                while True:
                    with self._lock:
                        later = [(i, g, seen) for i, g, seen in self._cache if i > at]
                        if not later:  # caught up: hand it over
                            self._landed = _Landed(newer, key, result, at)
                            return
                    i, newest, seen = later[-1]
                    if at == key.frame_id and seen is not None and seen[0] == key.frame_id:
                        # The scene says how the view moved since the key frame: one step, not one a frame.
                        guess = view_motion(seen[1], width, height)
                        if guess is not None:
                            newer.step(newest, guess)
                            at = i
                            continue
                    for i, gray, _ in later:
                        newer.step(gray)
                        at = i
        finally:
            with self._lock:
                if self._in_flight is key:
                    self._in_flight = None

    def _adopt(self, gray: np.ndarray) -> bool:
        """Take over an answer that landed, moved to this frame; whether there was one."""
        with self._lock:
            landed, self._landed = self._landed, None
        if landed is None:
            return False
        scene = self.tracker.scene
        if landed.at != self._frame_id:  # it reached the previous frame, as the scene did: one step moves both
            landed.tracker.scene = scene
            landed.tracker.step(gray)
            scene = landed.tracker.scene
        self.tracker.adopt(landed.tracker)
        self.tracker.scene = scene
        self._shown = (landed.key, landed.result)
        self._tracks_at_answer = len(self.tracker.tracks)
        self._new = landed.result
        return True

    def _why_key(self, gray: np.ndarray, now: float) -> str | None:
        """Why this frame needs an inference, or None."""
        if self._shown is None:
            return "nothing shown yet"
        motion = self.tracker.motion_px
        if motion is None or motion > FAST_PX:
            return None  # smeared, or not measured this frame (a cut, a swipe): wait for a steadier frame
        if self._moved_on is not None:
            return self._moved_on
        scene = self.tracker.scene
        assert scene is not None
        height, width = gray.shape
        x1, y1 = scene.quad.min(axis=0)
        x2, y2 = scene.quad.max(axis=0)
        seen = max(0.0, min(x2, width) - max(x1, 0.0)) * max(0.0, min(y2, height) - max(y1, 0.0))
        new = 1.0 - seen / (width * height)
        if new > NEW_CONTENT:
            return f"new content: {new:.0%} of the view"
        closer = (area(scene.quad) / (width * height)) ** 0.5
        if closer >= CLOSER:
            return f"closer: x{closer:.1f}"
        self._difference = self._differ(gray, scene.quad)
        changed = _changed(self._difference)
        if changed > CHANGED:
            return f"new content: the view changed ({changed:.0f})"
        lost = self._tracks_at_answer - len(self.tracker.tracks)
        if lost > 0:
            return f"{lost} of {self._tracks_at_answer} tracks lost"
        unsure = min((t.confidence for t in self.tracker.tracks), default=1.0)
        if unsure < MIN_CONFIDENCE:
            return f"a track is unsure ({unsure:.2f})"
        age_ms = (now - self._shown[0].arrived) * 1000
        if age_ms > MAX_AGE_MS:
            return f"the answer is {age_ms / 1000:.1f} s old"
        # A word the server read poorly (from a key frame sent at a low quality, to find text) is read again,
        # once, from a sharp crop. The device reads the full frame: asking it again would read the same.
        if self._regions and self._shown[1].where == Where.REMOTE:
            unread = sum(needs_reading(t) and t.reads < 2 for t in self.tracker.tracks)
            if unread:
                return f"{unread} word{'s' if unread > 1 else ''} to read again"
        return None

    def _differ(self, gray: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
        """Per thumbnail pixel, how much this frame differs from the last key frame's view (0-255) once
        aligned by the camera's motion since (`quad`: that view, here), and inf where the view did not
        reach; None when there is nothing to compare."""
        now = self.tracker.thumb
        if self._key_thumb is None or now is None:
            return None
        height, width = gray.shape
        motion = view_motion(quad, width, height)  # the key frame onto this one
        if motion is None:
            return None
        size = (now.shape[1], now.shape[0])
        to_small = np.diag([size[0] / width, size[1] / height]).astype(np.float64)
        small = np.hstack([to_small @ motion[:, :2] @ np.linalg.inv(to_small), (to_small @ motion[:, 2])[:, None]])
        warped = cv2.warpAffine(self._key_thumb, small, size)
        valid = cv2.warpAffine(np.ones_like(self._key_thumb), small, size) > 0.99
        return np.where(valid, np.abs(warped - now), np.inf).astype(np.float32)

    def _plan(self, gray: np.ndarray) -> RegionPlan | None:
        """What of this key frame to send (None: regions are off). Parts of it only where the last answer
        still covers part of the view: not at the first answer, a cut or a view that moved on; else all
        of it, to find text in (`whole`). A word whose track was lost is looked for again where it was."""
        if not self._regions:
            return None
        height, width = gray.shape
        scene = self.tracker.scene
        if scene is None or self._moved_on is not None:
            return whole(width, height)
        if self._difference is None:
            self._difference = self._differ(gray, scene.quad)
        if self._difference is None:
            return whole(width, height)
        tracks, lost = self.tracker.tracks, self.tracker.lost
        return plan_regions(width, height, tracks, self._difference, lost) or whole(width, height)

    def _result(self) -> FrameResult:
        key = self._key
        note = f"; key frame: {key.reason}" if key is not None else ""
        latency_ms = (time.monotonic() - self._arrived) * 1000
        if self._shown is None:
            shown, inferred = None, FrameResult(
                frame_id=-1, where=Where.NONE, reason="no answer yet", latency_ms=0.0, timings=Timings(),
                model=self.model, variant="", privacy="", policy="",
            )  # fmt: skip
            source, how = Source.NONE, "no answer yet"
        else:
            shown, inferred = self._shown
            fresh = shown.frame_id == self._frame_id
            source = Source.TRACKED
            if fresh:
                source = Source.FRESH_REMOTE if inferred.where == Where.REMOTE else Source.FRESH_LOCAL
            how = f"{'fresh' if fresh else f'tracked from frame {shown.frame_id}'} ({inferred.where.value}: "
            how += f"{inferred.reason})"
        texts, boxes = _answer(self.tracker.tracks, bool(inferred.texts))
        new = self._new  # the key frame whose answer lands here: its energy counts here, once
        radio_mj = new.radio_mj if new is not None else 0.0
        compute_mj = self._energy.compute_mj(self._work_ms) + (new.compute_mj if new is not None else 0.0)
        return FrameResult(
            frame_id=self._frame_id, where=inferred.where, reason=f"continuous: {how}{note}", latency_ms=latency_ms,
            timings=Timings(total_ms=latency_ms), model=self.model, variant=inferred.variant,
            privacy=inferred.privacy, policy=inferred.policy, source=source,
            age_ms=None if shown is None else (self._arrived - shown.arrived) * 1000,
            key_frame_id=None if shown is None else shown.frame_id, key_frame=key is not None,
            tracker_ms=self._work_ms, uplink_bytes=self._new.uplink_bytes if self._new is not None else 0,
            jpeg_quality=self._new.jpeg_quality if self._new is not None else None,
            texts=texts, boxes=boxes, classes=inferred.classes,
            energy_mj=radio_mj + compute_mj, radio_mj=radio_mj, compute_mj=compute_mj,
        )  # fmt: skip


def _changed(difference: np.ndarray | None) -> float:
    """How much the view changed since the last key frame (0-255), in the block of an 8x4 grid that changed
    most: a face or a sign that enters changes one block, not the whole view. Blocks not wholly in both
    views are left out (new area is `NEW_CONTENT`'s to judge)."""
    if difference is None:
        return 0.0
    valid = np.isfinite(difference).astype(np.float32)
    blocks = cv2.resize(np.where(valid > 0, difference, 0.0), (8, 4), interpolation=cv2.INTER_AREA)
    share = cv2.resize(valid, (8, 4), interpolation=cv2.INTER_AREA)
    whole_blocks = share > 0.99
    return float((blocks[whole_blocks] / share[whole_blocks]).max()) if whole_blocks.any() else 0.0


def _items(result: FrameResult, plan: RegionPlan | None) -> list[Seen]:
    """What to track of an answer: its words (text spotter), else its boxes (label as the text); the words
    a region plan carried keep their boxes' age (`RegionPlan.seen`)."""
    if result.texts:
        items = [(np.asarray(t.box.points, np.float32), t.text, t.score) for t in result.texts]
    else:
        items = [(np.asarray(b.points, np.float32), b.label, b.score) for b in result.boxes]
    return [plan.seen(*item) if plan is not None else Seen(*item) for item in items]


def _answer(tracks: list[Track], words: bool) -> tuple[list[TextItem], list[Box]]:
    """The tracks as this frame's texts and boxes."""
    boxes = [
        Box(points=[(float(x), float(y)) for x, y in t.quad], score=t.score, label="" if words else t.text,
            track_id=t.track_id)
        for t in tracks
    ]  # fmt: skip
    texts = [TextItem(box=b, text=t.text, score=t.score) for b, t in zip(boxes, tracks, strict=True)] if words else []
    return texts, boxes
