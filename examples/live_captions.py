"""Live captions: every word offload reads in a video, written as timed subtitles (.srt).

    python examples/live_captions.py VIDEO --server localhost:50051 --out captions.srt

A cue lasts while the same words are on screen; the player shows them over the video.
"""

from __future__ import annotations

import argparse

import cv2

from offload_client import OffloadClient


def timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def captions(video: str, server: str, models_dir: str | None = None) -> list[tuple[float, float, str]]:
    """(start s, end s, text) for each stretch of frames that show the same words."""
    capture = cv2.VideoCapture(video)
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    cues: list[tuple[float, float, str]] = []
    with OffloadClient(server, model="text-spotter", policy="adaptive", models_dir=models_dir) as oc:
        frame_index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            text = " ".join(oc.infer(frame).words)
            start, end = frame_index / fps, (frame_index + 1) / fps
            if cues and cues[-1][2] == text and abs(cues[-1][1] - start) < 1e-6:
                cues[-1] = (cues[-1][0], end, text)  # the same words: the cue goes on
            else:
                cues.append((start, end, text))
            frame_index += 1
    return [cue for cue in cues if cue[2]]


def write_srt(cues: list[tuple[float, float, str]], path: str) -> None:
    with open(path, "w", encoding="utf-8") as srt:
        for number, (start, end, text) in enumerate(cues, 1):
            srt.write(f"{number}\n{timestamp(start)} --> {timestamp(end)}\n{text}\n\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--models-dir", help="the device models (default: the cache)")
    parser.add_argument("--out", default="captions.srt")
    args = parser.parse_args()
    found = captions(args.video, args.server, args.models_dir)
    write_srt(found, args.out)
    print(f"{len(found)} captions written to {args.out}")
