"""`offload run`'s sources: files, folders and globs of images, a live MJPEG stream that drops and comes back,
and the annotated frames of `--save-video`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from offload_core.types import Box, FrameResult, Source, TextItem, Timings, Where
from offload_tools.annotate import COLOURS, AnnotatedVideo, annotate
from offload_tools.sources import SourceError, open_source
from tests.mjpeg import MjpegCamera


def numbered(count: int, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """Frames whose mean grey level says which they are: 10, 20, 30..."""
    return [np.full((*size, 3), 10 * (i + 1), np.uint8) for i in range(count)]


def test_a_folder_and_a_glob_give_their_images_sorted(tmp_path: Path) -> None:
    for i, frame in reversed(list(enumerate(numbered(5)))):
        cv2.imwrite(str(tmp_path / f"img_{i:02d}.png"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = open_source(tmp_path, fps=4.0)
    assert (folder.kind, folder.total, folder.fps, folder.live) == ("folder", 5, 4.0, False)
    assert [round(f.mean()) for f in folder.frames()] == [10, 20, 30, 40, 50]
    assert [round(f.mean()) for f in open_source(str(tmp_path / "img_0[13].png")).frames()] == [20, 40]
    assert len(list(folder.frames(limit=2))) == 2


@pytest.mark.parametrize(
    ("spec", "says"),
    [("missing.mp4", "no such video file: .*missing.mp4"), ("empty", "no images in"), ("7", "cannot open camera 7")],
)
def test_a_source_that_cannot_be_opened_says_which_and_why(tmp_path: Path, spec: str, says: str) -> None:
    (tmp_path / "empty").mkdir()
    target = str(tmp_path / spec) if spec != "7" else spec
    with pytest.raises(SourceError, match=says):
        open_source(target)


def test_a_video_file_has_its_count_and_rate(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 12.0, (128, 96))
    for frame in numbered(9):
        writer.write(frame)
    writer.release()
    video = open_source(path)
    assert (video.kind, video.total, video.fps, video.live) == ("file", 9, 12.0, False)
    assert len(list(video.frames())) == 9


def test_a_stream_that_drops_is_reopened_and_the_gap_counted() -> None:
    camera = MjpegCamera(numbered(4), fps=20.0).start()
    try:
        stream = open_source(camera.url)
        assert stream.kind == "stream" and stream.live and stream.total is None
        frames = stream.frames()
        assert {next(frames).shape for _ in range(10)} == {(96, 128, 3)}

        def reboot() -> None:  # down for ~1.5 s, then back on the same port
            camera.stop()
            time.sleep(1.5)
            camera.start()

        threading.Thread(target=reboot).start()
        got = [next(frames) for _ in range(30)]  # across the gap
        assert len(got) == 30 and stream.reopened >= 1
        assert stream.lost >= 10  # ~1.5 s at 20 fps that never came, counted, not invented
    finally:
        camera.stop()


def result_at(box: Box, source: Source | None, where: Where = Where.LOCAL) -> FrameResult:
    return FrameResult(
        frame_id=0, where=where, reason="test", latency_ms=42.0, timings=Timings(), model="text-spotter",
        variant="", privacy="allow", policy="adaptive", source=source, age_ms=120.0 if source else None,
        texts=[TextItem(box=box, text="EXIT")],
    )  # fmt: skip


def test_boxes_are_drawn_in_the_colour_of_where_their_content_came_from() -> None:
    frame = np.zeros((120, 200, 3), np.uint8)
    box = Box(points=[(40, 50), (160, 50), (160, 100), (40, 100)])
    for source, where, colour in [
        (Source.TRACKED, Where.LOCAL, "tracked"),
        (Source.FRESH_REMOTE, Where.REMOTE, "server"),
        (None, Where.LOCAL, "device"),
    ]:
        drawn = annotate(frame, result_at(box, source, where))
        assert tuple(drawn[75, 40]) == COLOURS[colour]  # on the box's left edge
        assert tuple(drawn[75, 100]) == (0, 0, 0)  # inside it, the frame untouched


def test_the_annotated_video_has_the_inputs_frames_and_size_and_the_tracked_colour(tmp_path: Path) -> None:
    box = Box(points=[(20, 30), (100, 30), (100, 80), (20, 80)])
    with AnnotatedVideo(tmp_path / "run.mp4", fps=10.0) as video:
        for frame in numbered(12, (120, 160)):
            video.write(frame, result_at(box, Source.TRACKED))
    assert video.path.exists() and video.codec  # .mp4 where OpenCV writes H.264, else the codec it could
    capture = cv2.VideoCapture(str(video.path))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    assert len(decoded) == 12 and decoded[0].shape == (120, 160, 3)
    edge = decoded[5][60, 19:22].astype(int).mean(axis=0)  # the box's 2-px left edge, through a lossy codec
    assert np.abs(edge - np.array(COLOURS["tracked"])).max() < 50, edge
