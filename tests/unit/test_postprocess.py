"""Pre- and post-processing on synthetic inputs, with the tiny generated model where a session is needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offload_core.engine import ModelRepository
from offload_core.engine.geometry import order_clockwise, quad_iou, reading_order
from offload_core.engine.spec import ModelSpec, VariantSpec
from offload_core.engine.tasks.classification import Classification
from offload_core.engine.tasks.text_detection import TextDetection, detection_size
from offload_core.engine.tasks.text_recognition import alphabet_from_metadata, ctc_greedy_decode

pytestmark = pytest.mark.unit


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    alphabet = alphabet_from_metadata("a\nb\nc")  # <blank>, a, b, c, space
    steps = [1, 1, 0, 1, 2, 2, 0, 0, 3, 4, 3]  # a a _ a b b _ _ c ␠ c
    probs = np.full((1, len(steps), len(alphabet)), 0.01, np.float32)
    for t, k in enumerate(steps):
        probs[0, t, k] = 0.9
    [(text, score)] = ctc_greedy_decode(probs, alphabet)
    assert text == "aabc c"
    assert score == pytest.approx(0.9)


def detection_task() -> TextDetection:
    spec = ModelSpec(
        name="d", task="text-detection", variants=[VariantSpec(name="v", file="x")], server_variant="v",
        device_variant="v", postprocess={"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.6},
    )  # fmt: skip
    return TextDetection(spec, spec.variant(), model=None)  # type: ignore[arg-type]


def test_dbnet_postprocess_finds_the_text_region_and_scales_it_to_the_frame() -> None:
    task = detection_task()
    prob = np.zeros((1, 1, 96, 160), np.float32)
    prob[0, 0, 40:56, 20:100] = 0.95  # a shrunk text kernel, in map coordinates
    [box] = task.postprocess(prob, height=192, width=320)  # the frame is twice the map
    pts = np.array(box.points)
    # Unclipped, then scaled ×2: the region grows beyond the kernel on every side.
    assert pts[:, 0].min() < 40 and pts[:, 0].max() > 198
    assert pts[:, 1].min() < 80 and pts[:, 1].max() > 110
    assert box.score > 0.8


def test_dbnet_ignores_faint_and_tiny_regions() -> None:
    task = detection_task()
    prob = np.zeros((1, 1, 64, 64), np.float32)
    prob[0, 0, 10:20, 10:40] = 0.35  # above thresh, below box_thresh
    prob[0, 0, 40:42, 40:42] = 0.99  # too small
    assert task.postprocess(prob, 64, 64) == []


def test_detector_input_is_a_multiple_of_32_with_the_long_side_fitted() -> None:
    assert detection_size(360, 640, 480) == (256, 480)
    assert detection_size(1080, 1920, 480) == (256, 480)
    assert detection_size(720, 1280, 640) == (352, 640)


def test_geometry_helpers() -> None:
    quad = order_clockwise(np.array([[10, 10], [0, 10], [0, 0], [10, 0]]))
    assert quad.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
    assert quad_iou(quad, quad) == pytest.approx(1.0)
    assert quad_iou(quad, quad + 20) == 0.0
    assert quad_iou(quad, quad + np.array([5, 0])) == pytest.approx(1 / 3)
    quads = [np.array([[50, 0], [60, 0], [60, 5], [50, 5]]), np.array([[0, 2], [10, 2], [10, 7], [0, 7]]),
             np.array([[0, 40], [10, 40], [10, 45], [0, 45]])]  # fmt: skip
    assert reading_order(quads) == [1, 0, 2]


def test_classification_top_k_with_a_generated_onnx_model(tiny_repo: Path) -> None:
    task = ModelRepository(tiny_repo).load("tiny")
    assert isinstance(task, Classification)
    for bgr, label in (((0, 0, 255), "red"), ((255, 0, 0), "blue"), ((0, 255, 0), "green")):
        image = np.zeros((16, 16, 3), np.uint8)
        image[:, :] = bgr
        prediction, times = task.run(image)
        assert prediction.classes[0].label == label
        assert prediction.classes[0].score > 0.99
    assert sum(c.score for c in prediction.classes) == pytest.approx(1.0, abs=1e-4)
    assert times.inference_ms > 0


def test_a_part_of_a_frame_is_scaled_as_the_whole_frame_would_be() -> None:
    task = detection_task()  # long side 960: a 640x480 frame runs at 960x704 (multiples of 32)
    whole = task.prepare(np.zeros((480, 640, 3), np.uint8)).tensor
    quarter = task.prepare_part(np.zeros((120, 160, 3), np.uint8), (480, 640)).tensor
    assert whole.shape[2:] == (704, 960)
    assert quarter.shape[2:] == (192, 256)  # 180x240 at the frame's x1.5, rounded to multiples of 32; not 960 wide
