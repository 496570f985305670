"""The tracker on synthetic motion with known ground truth: shift, zoom, rotation, blur, leaving, cuts."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from offload_client.tracking import Seen, Tracker, box_iou, cut_between, thumbnail

pytestmark = pytest.mark.unit
QUAD = np.array([[200, 150], [360, 150], [360, 210], [200, 210]], np.float32)


def scene(seed: int = 3, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A textured grey frame: blurred noise, with corners everywhere (as a wall of signs has)."""
    noise = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    return cv2.GaussianBlur(noise, (5, 5), 1.5)


def at(dx: float, dy: float) -> np.ndarray:
    """QUAD moved by (dx, dy)."""
    return QUAD + np.float32([dx, dy])


def warp(
    image: np.ndarray, angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """`image` moved (about the box's centre), and the 2x3 matrix that moved it."""
    centre = QUAD.mean(axis=0)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    m[:, 2] += shift
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT), m


def moved(quad: np.ndarray, m: np.ndarray) -> np.ndarray:
    return quad @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize(
    ("angle", "scale", "shift"),
    [(0, 1.0, (7, -4)), (0, 1.06, (0, 0)), (4, 1.0, (0, 0)), (2, 0.95, (-5, 3))],
    ids=["shift", "zoom", "rotation", "all three"],
)
def test_a_box_follows_known_motion(angle: float, scale: float, shift: tuple[float, float]) -> None:
    first = scene()
    tracker = Tracker()
    [seeded] = tracker.seed(first, [(QUAD, "EXIT", 0.9)])
    second, m = warp(first, angle, scale, shift)
    [track] = tracker.step(second)
    assert track.track_id == seeded.track_id and track.text == "EXIT" and track.frames_tracked == 1
    assert np.abs(track.quad - moved(QUAD, m)).max() < 1.0, (track.quad, moved(QUAD, m))
    assert track.confidence > 0.8


def test_motion_blur_costs_precision_not_the_track() -> None:
    first = scene()
    tracker = Tracker()
    tracker.seed(first, [(QUAD, "EXIT", 0.9)])
    second, m = warp(first, shift=(6, 0))
    blurred = cv2.filter2D(second, -1, np.full((1, 5), 1 / 5, np.float32))  # 5 px of horizontal blur
    [track] = tracker.step(blurred)
    assert np.abs(track.quad - moved(QUAD, m)).max() < 2.0


def test_many_frames_of_small_motion_do_not_drift() -> None:
    frame = scene()
    tracker = Tracker()
    tracker.seed(frame, [(QUAD, "EXIT", 0.9)])
    total = np.eye(3)
    for _ in range(20):
        frame, m = warp(frame, angle=0.3, shift=(2, 1))
        total = np.vstack([m, [0, 0, 1]]) @ total
        tracks = tracker.step(frame)
    assert len(tracks) == 1 and np.abs(tracks[0].quad - moved(QUAD, total[:2])).max() < 3.0


def test_a_box_that_leaves_the_frame_is_dropped_not_drawn_at_the_edge() -> None:
    frame = scene()
    tracker = Tracker()
    tracker.seed(frame, [(QUAD, "EXIT", 0.9), (at(0, 200), "BANK", 0.9)])
    for _ in range(12):  # the view pans right: boxes move left 30 px a frame, off the left edge
        frame, _ = warp(frame, shift=(-30, 0))
        tracks = tracker.step(frame)
    assert tracks == []


def test_a_word_lost_in_view_is_remembered_where_the_view_took_it_and_one_that_left_is_not() -> None:
    frame = scene()
    tracker = Tracker()
    tracker.seed(frame, [(QUAD, "EXIT", 0.9), (at(-190, 0), "BANK", 0.9)])
    tracker.watch_scene(frame)
    for step in range(1, 7):  # the view pans right; from the first step a flat occluder covers EXIT
        frame, _ = warp(frame, shift=(-30, 0))
        covered = frame.copy()
        x1, y1 = (at(-30 * step, 0).min(axis=0) - 4).astype(int)
        covered[y1 : y1 + 68, x1 : x1 + 168] = 128
        tracks = tracker.step(covered)
    assert tracks == [] and tracker.scene is not None
    [lost] = tracker.lost  # EXIT, where the view moved it; BANK left the frame
    assert np.abs(lost - at(-180, 0)).max() < 2.0, lost
    tracker.seed(frame, [])
    assert tracker.lost == []


def test_a_cut_drops_every_track_and_motion_is_no_cut() -> None:
    first = scene(3)
    light = np.tile(np.linspace(0, 200, 640).astype(np.uint8), (480, 1))
    elsewhere = cv2.add(scene(4) // 2, light)  # another scene, in other light
    moved = warp(first, shift=(10, 5))[0]
    assert cut_between(thumbnail(first), thumbnail(elsewhere)) and not cut_between(thumbnail(first), thumbnail(moved))
    for cut in (elsewhere, scene(4)):  # the second looks alike in thumbnails: the flow finds nothing to follow
        tracker = Tracker()
        tracker.seed(first, [(QUAD, "EXIT", 0.9)])
        assert tracker.step(cut) == []


def test_a_new_inference_keeps_the_ids_of_boxes_it_finds_again() -> None:
    frame = scene()
    tracker = Tracker()
    [exit_, bank] = tracker.seed(frame, [(QUAD, "EXIT", 0.9), (at(0, 200), "BANK", 0.9)])
    again = tracker.seed(frame, [(at(2, 1), "EXIT", 0.95), (at(0, -120), "NEW", 0.8)])
    assert again[0].track_id == exit_.track_id and again[1].track_id not in {exit_.track_id, bank.track_id}
    assert box_iou(QUAD, at(2, 1)) > 0.9


def shown_after(readings: list[tuple[str, float]] | list[tuple[str, float, bool]]) -> tuple[str, float]:
    """The text and score a word shows after key frames read it (text, score[, read now]), in order, from
    views of one size."""
    frame, tracker = scene(), Tracker()
    tracker.seed(frame, [(QUAD, *readings[0])])
    for text, score, *read_now in readings[1:]:
        newer = Tracker()
        newer.seed(frame, [Seen(at(1, 0), text, score, 0, *read_now)])
        tracker.adopt(newer)
    [word] = tracker.tracks
    return word.text, word.score


def test_one_confident_misreading_gives_way_to_two_readings_that_agree() -> None:
    # Seed 44 of the real-photo sample: a look read "Plaform" at 0.98; later looks read "Platform" at 0.93-0.96.
    assert shown_after([("Plaform", 0.98), ("Platform", 0.95)]) == ("Plaform", 0.98)
    assert shown_after([("Plaform", 0.98), ("Platform", 0.95), ("Platform", 0.94)]) == ("Platform", 0.94)
    # A sure reading is not flipped by one other; a word a region plan carried is no new reading.
    assert shown_after([("EXIT", 0.97), ("EX1T", 0.9)]) == ("EXIT", 0.97)
    carried = [("EX1T", 0.97), ("EXIT", 0.96), ("EX1T", 0.97, False), ("EXIT", 0.9)]
    assert shown_after(carried) == ("EXIT", 0.9)  # had the carried copy voted, EX1T would show
    # An unsure reading is replaced outright; the same text read again keeps the surer score.
    assert shown_after([("Bakey", 0.6), ("Bakery", 0.85)]) == ("Bakery", 0.85)
    assert shown_after([("EXIT", 0.9), ("EXIT", 0.95)]) == ("EXIT", 0.95)


def test_ten_boxes_take_a_few_milliseconds() -> None:
    """The 10 ms p95 target is make bench-tracker's; here the median step's CPU time on one OpenCV thread
    (this thread's CPU time: another process holding the core does not count) is within 2.5x that."""
    frame = scene()
    quads = [at(dx, dy) for dx in (-180, 0, 180) for dy in (-120, 0, 120)] + [at(0, 220)]
    tracker = Tracker()
    tracker.seed(frame, [(q, str(i), 0.9) for i, q in enumerate(quads)])
    times = []
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # a phone's one core for tracking, as the benchmark runs it
    try:
        for _ in range(10):
            frame, _ = warp(frame, shift=(3, 1))
            start = time.thread_time()
            tracks = tracker.step(frame)
            times.append((time.thread_time() - start) * 1000)
    finally:
        cv2.setNumThreads(threads)
    assert len(tracks) >= 9 and sorted(times)[len(times) // 2] < 25, times
