"""`make bench-tracker`: what carrying 10 boxes forward costs per frame, and how far they drift.

Frames of the real-photo sample (seeds no tuning used) are moved as a hand-held camera moves them:
a pan of 4 px a frame with a slow zoom and roll, and 1-in-8 frames with 5 px of motion blur. The
10 largest words of each photo are the boxes. OpenCV runs on one thread (a phone's budget for it).
Per frame: the tracker's time; per run: p50/p95 ms, the boxes still tracked, and their corners'
error against the known motion. Target (continuous mode, #34): p95 ≤ 10 ms for 10 boxes here,
before the ×3 of the emulated phone; on that phone (×3) it must fit the 50 ms a frame's answer may take.
Each photo is run `REPEATS` times and the run with the median p95 is judged: the fastest would judge
the machine's best moment (4 of 9 repeats were over 10 ms in one run), not the tracker's usual cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.record import relative, settings_of
from offload_client.tracking import Tracker, box_iou
from offload_tools.sample import render_frames

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (61, 62, 63)
BOXES = 10
TARGET_P95_MS = 10.0
REPEATS = 3
DEVICE_SLOWDOWN = 3.0  # the emulated phone of make bench-continuous
FRAME_BUDGET_MS = 50.0  # a frame's answer on that phone, tracking included (continuous mode's p99 target)


def camera(step: int, centre: tuple[float, float]) -> np.ndarray:
    """The 2x3 motion after `step` frames: 4 px a frame to the left, 0.2 % zoom and 0.1° roll a frame."""
    m = cv2.getRotationMatrix2D(centre, 0.1 * step, 1.0 + 0.002 * step)
    m[0, 2] -= 4.0 * step
    return m


def run(seed: int, frames: int) -> tuple[list[float], list[float], int, int]:
    """(ms per step, corner errors in px of the boxes still tracked at the end, boxes seeded, boxes kept)."""
    images, truth = render_frames(seed, 12, style="real")
    busiest = max(range(len(images)), key=lambda i: len(truth.frames[i].words))  # the photo with most words
    photo = cv2.cvtColor(images[busiest], cv2.COLOR_BGR2GRAY)
    # Its words, then sign-sized boxes on a grid over the photo, up to BOXES, none overlapping.
    height, width = photo.shape
    grid = [(f"grid{x},{y}", np.array([[x, y], [x + 120, y], [x + 120, y + 40], [x, y + 40]], np.float32))
            for y in range(40, height - 80, 90) for x in range(40, width - 160, 150)]  # fmt: skip
    candidates = [(w.text, np.asarray(w.quad, np.float32)) for w in truth.frames[busiest].words] + grid
    quads_of: dict[str, np.ndarray] = {}
    for name, quad in candidates:
        if len(quads_of) < BOXES and all(box_iou(quad, q) == 0 for q in quads_of.values()):
            quads_of[name] = quad
    words = list(quads_of)
    quads = [quads_of[text] for text in words]
    centre = (width / 2, height / 2)
    tracker = Tracker()
    tracker.seed(photo, [(q, text, 1.0) for q, text in zip(quads, words, strict=True)])
    times: list[float] = []
    tracks = []
    for step in range(1, frames + 1):
        m = camera(step, centre)
        frame = cv2.warpAffine(photo, m, (width, height), borderMode=cv2.BORDER_REPLICATE)
        if step % 8 == 0:
            frame = cv2.filter2D(frame, -1, np.full((1, 5), 1 / 5, np.float32))
        start = time.perf_counter()
        tracks = tracker.step(frame)
        times.append((time.perf_counter() - start) * 1000.0)
    final = camera(frames, centre)
    errors = [float(np.abs(t.quad - (quads_of[t.text] @ final[:, :2].T + final[:, 2])).max()) for t in tracks]
    return times, errors, len(quads), len(tracks)


def median_run(seed: int, frames: int) -> tuple[tuple[list[float], list[float], int, int], list[float]]:
    """`run` `REPEATS` times: the run with the median p95, and each run's p95."""
    runs = [run(seed, frames) for _ in range(REPEATS)]
    p95s = [float(np.percentile(r[0], 95)) for r in runs]
    return runs[int(np.argsort(p95s)[len(p95s) // 2])], p95s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=45, help="frames per photo (3 s at 15 fps)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tracker.json")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    times, errors, seeded, kept, repeats = [], [], 0, 0, []
    for seed in SEEDS:
        (t, e, n, k), p95s = median_run(seed, args.frames)
        repeats.append([round(p, 2) for p in p95s])
        times += t
        errors += e
        seeded += n
        kept += k
    p50, p95 = statistics.median(times), float(np.percentile(times, 95))
    verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
    on_device = p95 * DEVICE_SLOWDOWN
    device_verdict = "met" if on_device <= FRAME_BUDGET_MS else "NOT met"
    result = {
        "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "boxes_seeded": seeded, "boxes_kept": kept,
        "corner_error_px_median": round(statistics.median(errors), 2) if errors else None,
        "corner_error_px_max": round(max(errors), 2) if errors else None,
        "target_p95_ms": TARGET_P95_MS, "verdict": verdict, "p95_ms_of_each_repeat": repeats,
        "p95_ms_on_device": round(on_device, 2), "device_slowdown": DEVICE_SLOWDOWN,
        "frame_budget_ms": FRAME_BUDGET_MS, "device_verdict": device_verdict,
        "settings": {**settings_of(args), "seeds": list(SEEDS), "opencv_threads": 1},
    }  # fmt: skip
    print("| p50 ms | p95 ms | boxes kept | corner error px (median / max) | p95 <= 10 ms | p95 at x3 <= 50 ms |")
    print("|---|---|---|---|---|---|")
    print(f"| {p50:.2f} | {p95:.2f} | {kept} of {seeded} | {result['corner_error_px_median']} / "
          f"{result['corner_error_px_max']} | {verdict} | {on_device:.1f} {device_verdict} |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {relative(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
