"""The three apps in `examples/` run to completion on samples and hold what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.tasks.face_detection import FaceDetection
from offload_server import OffloadServer
from offload_tools.faces import face_frames
from offload_tools.sample import load_ground_truth, render_frames, write_sample_video
from tests.proxy import recording_proxy

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_live_captions_writes_the_videos_words_as_timed_subtitles(
    server: OffloadServer, models_dir: Path, tmp_path: Path
) -> None:
    video, truth_path = write_sample_video(tmp_path / "sample", seed=13, frames=30)
    truth = load_ground_truth(truth_path)
    srt = tmp_path / "captions.srt"
    run_example("live_captions.py", str(video), "--server", server.grpc_target, "--models-dir", str(models_dir),
                "--out", str(srt))  # fmt: skip
    cues = re.findall(r"(\d+)\n(\S+) --> (\S+)\n(.+)\n", srt.read_text())
    assert cues, srt.read_text()
    length = len(truth.frames) / truth.fps
    assert all(0 <= seconds(start) < seconds(end) <= length + 1e-3 for _, start, end, _ in cues)
    shown = {word for *_, text in cues for word in text.split()}
    words = {w.text for f in truth.frames for w in f.words}
    assert len(shown & words) >= 0.7 * len(words), (shown, words)


def test_the_doorbell_counts_its_visitors_and_sends_no_face(
    server: OffloadServer, models_dir: Path, tmp_path: Path
) -> None:
    empty = [cv2.resize(f, (640, 480)) for f in render_frames(seed=21, frames=16)[0]]  # the porch, nobody on it
    visit = [f.image for f in face_frames(seed=4, count=8, beside_words=True)[0]]
    frames = [*empty, *visit, *empty, *visit]  # two visits
    video = tmp_path / "porch.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    with recording_proxy(server.grpc_target) as (target, proxy):
        out = run_example("doorbell.py", str(video), "--server", target, "--models-dir", str(models_dir))
    assert "visitors: 2;" in out, out
    assert proxy.images, "nothing was sent: the promise would hold trivially"
    detector = ModelRepository(models_dir).load(
        "face-detector", None, SessionConfig(providers=["CPUExecutionProvider"])
    )
    assert isinstance(detector, FaceDetection)
    received = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in proxy.images]
    assert not [i for i, image in enumerate(received) if detector.find(image, detector.score_threshold)]


def test_the_menu_translator_translates_each_word_once_not_once_per_frame(
    server: OffloadServer, models_dir: Path, tmp_path: Path
) -> None:
    video, truth_path = write_sample_video(tmp_path / "pan", seed=31, frames=45, style="pan")
    truth = load_ground_truth(truth_path)
    out = run_example("menu_translator.py", str(video), "--server", server.grpc_target,
                      "--models-dir", str(models_dir))  # fmt: skip
    translated = re.findall(r"^(\S+) -> <(\S+)>$", out, re.M)
    assert translated and all(word.lower() == marked for word, marked in translated)
    calls, shown = map(int, re.findall(r"^(\d+) words translated for (\d+) shown$", out, re.M)[0])
    assert calls == len(translated)
    # Once per track: a word keeps its track while in view, so one reading is translated again only when
    # its track was lost (a swipe) and found again. The sample's truth lists only whole words in view, so
    # it cannot bound the count (half-visible words are read and translated too): the readings do.
    times = Counter(word for word, _ in translated)
    assert max(times.values()) <= 3, times
    assert calls * 4 <= shown, (calls, shown)  # far fewer than once per frame it is shown on
    assert {w.text for f in truth.frames for w in f.words} & set(times), times  # the sample's words are read
