"""`offload run SOURCE` on a folder of images, a live MJPEG stream (dropped and back mid-run, stopped with
Ctrl-C), and a source that cannot be opened; `--save-video` and `offload replay`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from offload_server import OffloadServer
from offload_tools.telemetry import read_telemetry
from tests.mjpeg import MjpegCamera

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
Sample = tuple[list[np.ndarray], object]


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


def test_a_folder_of_images_is_paced_saved_annotated_and_replayed(
    server: OffloadServer, sample: Sample, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, frame in enumerate(sample[0][:6]):
        cv2.imwrite(str(photos / f"{i:03d}.jpg"), frame)
    out = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "offload"), "run", str(photos), "--fps", "4", "--server", server.grpc_target, "--out", str(out),
         "--save-video", str(out / "annotated.mp4")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 5 / 4  # paced at 4 frames a second
    assert len(read_telemetry(out / "telemetry.jsonl")) == 6
    saved = next(out.glob("annotated.*"))
    assert f"annotated video: {saved}" in done.stdout.replace("\n", "")
    assert frame_count(saved) == 6 and cv2.VideoCapture(str(saved)).read()[1].shape == sample[0][0].shape
    again = subprocess.run(
        [str(BIN / "offload"), "replay", str(out / "telemetry.jsonl"), str(photos), "--save-video",
         str(tmp_path / "replayed.webm")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert frame_count(next(tmp_path.glob("replayed.*"))) == 6


def test_a_source_that_cannot_be_opened_gets_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    for source, says in [(str(tmp_path / "nope.mp4"), "no such video file"), ("rtsp://127.0.0.1:9/x", "cannot open")]:
        done = subprocess.run([str(BIN / "offload"), "run", source, "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2 and says in done.stdout and source in done.stdout, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr


def test_a_live_stream_survives_a_drop_and_ctrl_c_ends_the_run_with_its_summary(
    server: OffloadServer, sample: Sample, tmp_path: Path
) -> None:
    camera = MjpegCamera(sample[0][:8], fps=10.0).start()
    out = tmp_path / "live"
    command = [str(BIN / "offload"), "run", camera.url, "--server", server.grpc_target, "--out", str(out)]
    # Started as a script starts it in the background: with SIGINT ignored, which it must not inherit.
    run = subprocess.Popen(
        ["bash", "-c", 'trap "" INT; exec "$@"', "bash", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a hang is shown: SIGABRT then prints every thread
    )  # fmt: skip
    telemetry = out / "telemetry.jsonl"

    def answered() -> int:
        return len(telemetry.read_text().splitlines()) if telemetry.exists() else 0

    def wait_for(frames: int, timeout_s: float = 120.0) -> None:
        end = time.monotonic() + timeout_s
        while answered() < frames and time.monotonic() < end and run.poll() is None:
            time.sleep(0.2)
        assert answered() >= frames, f"{answered()} frames answered; {run.poll()=}"

    try:
        wait_for(5)
        camera.stop()  # the camera reboots: down ~2 s
        time.sleep(2.0)
        camera.start()
        before = answered()
        wait_for(before + 5)  # the run went on after the drop
    finally:
        run.send_signal(signal.SIGINT)
        try:
            stdout, stderr = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # one failure that says where it hung, not a stray process
            run.send_signal(signal.SIGABRT)
            stdout, stderr = run.communicate(timeout=30)
            pytest.fail(f"offload run did not end within 60 s of Ctrl-C; its threads:\n{stderr[-6000:]}")
        finally:
            camera.stop()
    assert run.returncode == 0, stderr
    assert "stopped after" in stdout and "came back 1 time" in stdout, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == len(read_telemetry(telemetry)) >= 10
