"""A menu translator skeleton: words tracked on screen, each translated once, not once per frame.

    python examples/menu_translator.py VIDEO --server localhost:50051

Continuous mode answers every frame at once from the device's tracker; a word keeps its `track_id` while
it stays in view, so `translate` (yours: a dictionary, an API) runs once per word on screen.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import cv2

from offload_client import OffloadClient


def translate(text: str) -> str:
    """Put your translator here; this one only marks the word."""
    return f"<{text.lower()}>"


def overlay(video: str, server: str, translator: Callable[[str], str] = translate,
            models_dir: str | None = None) -> tuple[dict[int, str], int]:  # fmt: skip
    """Each track's translation, by track id, and how many words were shown over all frames (each one a
    translation saved but the first). Prints a word the first time it is seen."""
    capture = cv2.VideoCapture(video)
    period = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 15.0)
    translated: dict[int, str] = {}
    shown = 0
    with OffloadClient(server, model="text-spotter", mode="continuous", models_dir=models_dir) as oc:
        started = time.monotonic()
        for i in itertools.count():
            ok, frame = capture.read()
            if not ok:
                break
            time.sleep(max(0.0, started + i * period - time.monotonic()))  # a file plays at its camera's rate
            for word in oc.infer(frame).texts:
                shown += 1
                if word.track_id is not None and word.track_id not in translated:
                    translated[word.track_id] = translator(word.text)
                    print(f"{word.text} -> {translated[word.track_id]}")
                # An app draws translated[word.track_id] over word.box here, on every frame.
    return translated, shown


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--models-dir", help="the device models (default: the cache)")
    args = parser.parse_args()
    words, shown = overlay(args.video, args.server, models_dir=args.models_dir)
    print(f"{len(words)} words translated for {shown} shown")
