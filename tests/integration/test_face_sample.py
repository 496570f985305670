"""The face detector's sample (`offload sample-video --style faces`) and an app running that model on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_client import OffloadClient
from offload_core.engine.tasks.face_detection import FaceDetection
from offload_tools.evaluation import score_frame, total
from offload_tools.sample import render_frames
from offload_tools.telemetry import Summary

pytestmark = pytest.mark.integration


def test_the_face_sample_holds_faces_as_truth_and_the_model_finds_them(models_dir: Path) -> None:
    frames, truth = render_frames(seed=5, frames=8, style="faces")
    assert truth.style == "faces" and frames[0].shape == (480, 640, 3)
    assert all(f.words and all(w.text == "" and len(w.quad) == 4 for w in f.words) for f in truth.frames)
    with OffloadClient(model="face-detector", policy="always-local", models_dir=models_dir) as oc:
        results = [oc.infer(f) for f in frames]
    assert all(r.model == "face-detector" and not r.texts for r in results)
    assert all(b.label == "face" for r in results for b in r.boxes)
    score = total(score_frame(t.words, r.boxes, r.texts) for t, r in zip(truth.frames, results, strict=True))
    assert score.f1 >= 0.8, score
    summary = Summary.of(results, score, words=False)  # nothing to read: no word accuracy, not a zero
    assert summary.word_accuracy is None and summary.detection_f1 == pytest.approx(score.f1)
    assert isinstance(oc.local.task, FaceDetection)
