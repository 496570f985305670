"""A privacy-first doorbell: counts visitors, reads what they hold up, and sends no face anywhere.

    python examples/doorbell.py VIDEO --server localhost:50051

Faces are found on the device (the face detector, never offloaded). Frames go to the server only to read
text, with privacy "redact": every face is painted over on the device first, and a frame in which a face
remains is not sent at all.
"""

from __future__ import annotations

import argparse

import cv2

from offload_client import OffloadClient

AWAY_FRAMES = 15  # a visit ends after this many frames without a face


def watch(video: str, server: str, models_dir: str | None = None) -> tuple[int, set[str]]:
    """(visitors, words read) over the video."""
    capture = cv2.VideoCapture(video)
    visitors, without_face, words = 0, AWAY_FRAMES, set()
    with (
        OffloadClient(model="face-detector", policy="always-local", models_dir=models_dir) as faces,
        OffloadClient(server, model="text-spotter", privacy="redact", models_dir=models_dir) as reader,
    ):
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if faces.infer(frame).boxes:
                visitors += without_face >= AWAY_FRAMES  # someone came after the porch was empty
                without_face = 0
            else:
                without_face += 1
            words.update(reader.infer(frame).words)
    return visitors, words


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--models-dir", help="the device models (default: the cache)")
    args = parser.parse_args()
    count, read = watch(args.video, args.server, args.models_dir)
    print(f"visitors: {count}; words read: {' '.join(sorted(read)) or '-'}")
