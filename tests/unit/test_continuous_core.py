"""Continuous mode's core, driven by hand: frames arrive, key frames are chosen, late answers land in place.

No model and no network: an "inference" is a FrameResult built from the known positions of boxes,
handed to `land` when the test says, as the key frame's thread would.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from offload_client.continuous import FAST_PX, Continuous, KeyFrame
from offload_client.device_speed import DeviceSpeed
from offload_client.tracking import Track, Tracker, box_iou
from offload_core.types import Box, FrameResult, Source, TextItem, Timings, Where

pytestmark = pytest.mark.unit
WORDS = {
    "EXIT": np.array([[200, 150], [330, 150], [330, 200], [200, 200]], np.float32),
    "BANK": np.array([[380, 300], [520, 300], [520, 350], [380, 350]], np.float32),
}


def wall(seed: int = 3, size: tuple[int, int] = (960, 1280)) -> np.ndarray:
    """A textured wall, larger than a frame: blurred noise has corners everywhere; light and dark
    patches (as photographs have) tell two walls apart at a glance."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.integers(0, 256, (*size, 3), dtype=np.uint8), (5, 5), 1.5).astype(np.float32)
    patches = cv2.resize(
        rng.integers(0, 256, (6, 8, 3)).astype(np.float32), size[::-1], interpolation=cv2.INTER_NEAREST
    )
    return (0.3 * noise + 0.7 * patches).astype(np.uint8)


def view(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """The 640x480 frame whose top-left is at (x, y) on the wall (sub-pixel)."""
    m = np.float32([[1, 0, -x], [0, 1, -y]])
    return cv2.warpAffine(image, m, (640, 480), flags=cv2.INTER_LINEAR)


def answer(frame_id: int, shift: tuple[float, float], texts: dict[str, float] | None = None) -> FrameResult:
    """What an inference on frame `frame_id` says: the words where they are in that frame."""
    texts = texts or {"EXIT": 0.95, "BANK": 0.95}
    items = [
        TextItem(box=Box(points=[(float(x), float(y)) for x, y in WORDS[w] - np.float32(shift)]), text=w, score=s)
        for w, s in texts.items()
    ]
    return FrameResult(
        frame_id=frame_id, where=Where.REMOTE, reason="test", latency_ms=1.0, timings=Timings(), model="m",
        variant="fp32", privacy="allow", policy="always-remote", uplink_bytes=1234, texts=items,
        boxes=[t.box for t in items],
    )  # fmt: skip


def quad_of(result: FrameResult, text: str) -> np.ndarray:
    [item] = [t for t in result.texts if t.text == text]
    return np.asarray(item.box.points, np.float32)


def test_a_late_answer_is_tracked_forward_and_lands_where_the_words_are_now() -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    pan = [(100.0 + 4 * i, 80.0 + 1.5 * i) for i in range(12)]  # 4 px right, 1.5 px down per frame
    key = core.arrive(view(image, *pan[0]), 0.0)
    assert key is not None and key.frame_id == 0 and key.reason == "nothing shown yet"
    first = core.show()
    assert first.source == Source.NONE and first.where == Where.NONE and first.texts == []
    for i in range(1, 8):  # the inference is out: frames keep coming, and nothing is asked twice
        assert core.arrive(view(image, *pan[i]), i / 15) is None
        assert core.show().source == Source.NONE
    # The answer for frame 0 comes back while the camera is at frame 7; frame 8 shows it.
    core.land(key, answer(0, (0, 0)))
    core.arrive(view(image, *pan[8]), 8 / 15)
    shown = core.show()
    assert shown.source == Source.TRACKED and shown.key_frame_id == 0
    assert shown.age_ms == pytest.approx(8 / 15 * 1000)
    assert shown.uplink_bytes == 1234  # the key frame's bytes count once, where its answer lands
    assert sorted(shown.words) == ["BANK", "EXIT"]
    for word, quad in WORDS.items():
        truth = quad + np.float32([pan[0][0] - pan[8][0], pan[0][1] - pan[8][1]])  # 32 px left, 12 px up
        assert np.abs(quad_of(shown, word) - truth).max() < 2.0, word
    assert {t.track_id for t in shown.texts} == {0, 1}
    core.arrive(view(image, *pan[9]), 9 / 15)
    assert core.show().uplink_bytes == 0


def test_track_ids_hold_and_a_word_is_read_again_only_when_the_new_reading_is_worth_more() -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    key = core.arrive(view(image, 100, 80), 0.0)
    assert key is not None
    core.land(key, answer(0, (0, 0), {"EXIT": 0.95, "BANK": 0.6}))
    core.arrive(view(image, 102, 80), 1 / 15)
    ids = {t.text: t.track_id for t in core.show().texts}
    # A later inference reads EXIT worse (a lower score) and BANK, which was unsure, anew: EXIT keeps its
    # text, BANK takes the new reading; both keep their ids.
    later = KeyFrame(1, view(image, 102, 80), 1 / 15, "test")
    late = answer(1, (2, 0), {"EXIT": 0.7, "BANK": 0.9})
    late.texts[0] = late.texts[0].model_copy(update={"text": "EX1T"})
    late.texts[1] = late.texts[1].model_copy(update={"text": "BANK!"})
    core.land(later, late)
    core.arrive(view(image, 104, 80), 2 / 15)
    shown = core.show()
    assert {t.text: t.track_id for t in shown.texts} == {"EXIT": ids["EXIT"], "BANK!": ids["BANK"]}


def test_a_cut_asks_for_a_key_frame_and_fast_motion_waits_for_a_steady_one() -> None:
    core = Continuous("m", DeviceSpeed())
    here, there = wall(3), wall(9)
    key = core.arrive(view(here, 100, 80), 0.0)
    assert key is not None
    core.land(key, answer(0, (0, 0)))
    for i in range(1, 4):  # a steady camera over the same words: no key frame
        assert core.arrive(view(here, 100 + i, 80), i / 15) is None
    assert len(core.show().texts) == 2
    assert core.arrive(view(there, 300, 300), 4 / 15) is None  # the cut frame: its motion is unknown yet
    assert core.show().texts == []  # the words of the last wall are not drawn on this one
    key = core.arrive(view(there, 302, 300), 5 / 15)
    assert key is not None and key.reason == "a cut"
    core.land(key, answer(5, (0, 0)))
    # A swipe: frames that move faster than FAST_PX are not sent, however new their content.
    x = 302.0
    for i in range(6, 12):
        x += 3 * FAST_PX
        assert core.arrive(view(there, x, 300), i / 15) is None, i
    key = core.arrive(view(there, x + 2, 300), 12 / 15)
    assert key is not None and key.reason.startswith("new content")


def test_an_old_answer_asks_for_a_fresh_one() -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    key = core.arrive(view(image, 100, 80), 0.0)
    assert key is not None
    core.land(key, answer(0, (0, 0)))
    assert core.arrive(view(image, 101, 80), 1.0) is None
    key = core.arrive(view(image, 101, 80), 2.5)
    assert key is not None and key.reason == "the answer is 2.5 s old"
    result = core.show()
    assert result.key_frame and "key frame: the answer is 2.5 s old" in result.reason
    assert box_iou(quad_of(result, "EXIT"), WORDS["EXIT"] - np.float32([1, 0])) > 0.9


def test_something_entering_a_steady_view_asks_for_a_key_frame() -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    key = core.arrive(view(image, 100, 80), 0.0)
    assert key is not None
    core.land(key, answer(0, (0, 0)))
    assert core.arrive(view(image, 101, 80), 1 / 15) is None
    entered = view(image, 102, 80)
    entered[60:220, 430:560] = (30, 30, 200)  # a sign held up in a corner of the view, clear of the words
    key = core.arrive(entered, 2 / 15)
    assert key is not None and key.reason.startswith("new content: the view changed"), key and key.reason


def test_a_word_whose_track_is_lost_is_looked_for_where_it_was_not_in_the_whole_frame() -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    key = core.arrive(view(image, 100, 80), 0.0)
    assert key is not None and key.plan is not None and key.plan.share == 1.0  # the first goes whole
    core.land(key, answer(0, (0, 0)))
    core.arrive(view(image, 101, 80), 1 / 15)
    covered = view(image, 102, 80)
    exit_ = WORDS["EXIT"] - np.float32([2, 0])
    x1, y1 = exit_.min(axis=0).astype(int)
    patch = covered[y1 - 4 : y1 + 56, x1 - 4 : x1 + 136]
    patch[:] = cv2.GaussianBlur(patch, (0, 0), 8)  # smeared: its corners gone (its track lost), its light kept
    key = core.arrive(covered, 2 / 15)
    assert key is not None and key.reason == "1 of 2 tracks lost", key and key.reason
    assert key.plan is not None and key.plan.share < 0.5  # regions, not the whole frame
    finds = [c for c in key.plan.crops if not c.read]
    assert any(c.x <= x1 and c.y <= y1 and c.x + c.width >= x1 + 130 and c.y + c.height >= y1 + 50 for c in finds)


def test_a_new_frame_size_is_a_cut_not_a_crash() -> None:
    core = Continuous("m", DeviceSpeed())
    here = wall(3)
    key = core.arrive(view(here, 100, 80), 0.0)
    assert key is not None
    core.land(key, answer(0, (0, 0)))
    assert core.arrive(view(here, 101, 80), 1 / 15) is None and len(core.show().texts) == 2
    turned = np.ascontiguousarray(view(here, 102, 80)[:, :360])  # the phone turned: another frame size
    assert core.arrive(turned, 2 / 15) is None  # the cut frame: its motion is unknown yet
    assert core.show().texts == []  # the last view's words are not drawn on this one
    key = core.arrive(np.ascontiguousarray(view(here, 103, 80)[:, :360]), 3 / 15)
    assert key is not None and key.reason == "a cut"


def test_a_late_answer_lands_in_one_step_where_the_scene_says_the_view_went(monkeypatch: pytest.MonkeyPatch) -> None:
    image = wall()
    core = Continuous("m", DeviceSpeed())
    pan = [(100.0 + 7 * i, 80.0 - 2 * i) for i in range(12)]  # 56 px right, 16 px up while it is out
    key = core.arrive(view(image, *pan[0]), 0.0)
    assert key is not None
    for i in range(1, 9):
        assert core.arrive(view(image, *pan[i]), i / 15) is None
    steps: list[Tracker] = []
    real_step = Tracker.step

    def counted(self: Tracker, gray: np.ndarray, guess: np.ndarray | None = None) -> list[Track]:
        steps.append(self)
        return real_step(self, gray, guess)

    monkeypatch.setattr(Tracker, "step", counted)
    core.land(key, answer(0, (0, 0)))
    assert len(steps) == 1  # from the key frame to frame 8 at once, not eight steps (~15 ms each on a phone)
    core.arrive(view(image, *pan[9]), 9 / 15)
    shown = core.show()
    for word, quad in WORDS.items():
        truth = quad + np.float32([pan[0][0] - pan[9][0], pan[0][1] - pan[9][1]])
        assert np.abs(quad_of(shown, word) - truth).max() < 2.0, word
