"""`make bench-accuracy`: what each path reads on the real-photo sample, side by side in one run.

Contenders, every one on the same frames, one intra-op thread each (a phone's budget, and
a fair race): the server's pipeline, the spotter's device variants from model.yaml, other
candidate device configurations (detector precision × input size, the int8 recognizer),
and the peer pipeline that ships these PP-OCR models, rapidocr-onnxruntime, imported from
its wheel's files (never installed: it would pull the GUI build of OpenCV). For each:
detection F1, precision, recall, word accuracy, median ms per frame and the bytes a device
would ship. Writes bench/results/accuracy.json.

`--model NAME` measures any other model instead, by its task's own `examples` and `accuracy`
(`bench/task_accuracy.py`): `make bench-accuracy MODEL=face-detector`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from rich.console import Console
from rich.progress import Progress

from bench import task_accuracy
from bench.record import relative, settings_of
from offload_client.policy.estimators import JPEG_LADDER
from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.image import encode_jpeg
from offload_core.engine.spec import VariantSpec
from offload_core.engine.tasks.base import Task
from offload_core.engine.tasks.text_detection import TextDetection
from offload_core.engine.tasks.text_recognition import TextRecognition
from offload_core.engine.tasks.text_spotter import TextSpotter
from offload_core.types import Box, Prediction, TextItem
from offload_server.quantize.toolchain import load_task
from offload_tools.evaluation import Score, score_frame, total
from offload_tools.sample import GroundTruth, render_frames

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (7, 8, 9)  # the real sample `offload run --sample --sample-style real` shows, and two more
ONE_THREAD = SessionConfig(intra_op_threads=1)
JPEG_ROW = "jpeg-q"  # the rows of the server reading frames sent at each JPEG quality
CANDIDATE_SIZES = (480, 640, 800, 960)  # the detector's input-size ladder (the long side)
console = Console()

Run = Callable[[np.ndarray], Prediction]


def runner(task: Task) -> Run:
    """A task's prediction for one frame, without its stage times."""
    return lambda frame: task.run(frame)[0]


def spotter(repo: ModelRepository, detector: VariantSpec, recognizer: str) -> TextSpotter:
    """A text-spotter whose detector is any file and size (model.yaml need not name it)."""
    spec = repo.spec("text-spotter")
    det_spec = repo.spec("text-detector")
    path = repo.root / "text-detector" / (detector.file or "")
    det = load_task(det_spec, path, detector.input_size, detector.name, detector.recipe)
    rec = repo.load("text-recognizer", recognizer, ONE_THREAD)
    assert isinstance(det, TextDetection) and isinstance(rec, TextRecognition)
    variant = VariantSpec(name=f"{detector.name}+{recognizer}", stages={"detector": detector.name})
    return TextSpotter(spec, variant, det, rec)


def rapidocr_runner(wheel: Path, unpacked: Path) -> Run:
    """rapidocr-onnxruntime's own pipeline (detector, orientation classifier, recognizer), one thread."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    sys.path.insert(0, str(unpacked))
    from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-not-found]

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def run(frame: np.ndarray) -> Prediction:
        found, _ = engine(frame)
        texts = [
            TextItem(box=Box(points=[(float(x), float(y)) for x, y in quad]), text=str(text).strip(), score=float(s))
            for quad, text, s in (found or [])
        ]
        return Prediction(boxes=[t.box for t in texts], texts=texts)

    return run


def measure(run: Run, frames: list[np.ndarray], truth: GroundTruth) -> tuple[Score, float]:
    run(frames[0])  # warm-up: the first call allocates
    scores, times = [], []
    for frame, ft in zip(frames, truth.frames, strict=True):
        start = time.perf_counter()
        prediction = run(frame)
        times.append((time.perf_counter() - start) * 1000.0)
        scores.append(score_frame(ft.words, prediction.boxes, prediction.texts))
    return total(scores), statistics.median(times)


def contenders(repo: ModelRepository, rapidocr_wheel: Path | None, unpacked: Path) -> dict[str, tuple[Run, int]]:
    """name → (run one frame, bytes of model files it needs)."""
    det_spec, rec_spec = repo.spec("text-detector"), repo.spec("text-recognizer")

    def size_of(model: str, variant: VariantSpec) -> int:
        return (repo.root / model / (variant.file or "")).stat().st_size

    out: dict[str, tuple[Run, int]] = {}
    shipped: set[tuple[str | None, int | None]] = set()
    spot_spec = repo.spec("text-spotter")
    for variant in spot_spec.variants:  # what model.yaml ships: the server's and the device's
        task = repo.load("text-spotter", variant.name, ONE_THREAD)
        det, rec = det_spec.variant(variant.stages["detector"]), rec_spec.variant(variant.stages["recognizer"])
        shipped.add((det.file, det.input_size))
        label = f"{variant.name} ({det.name} + {rec.name})"
        out[label] = (runner(task), size_of("text-detector", det) + size_of("text-recognizer", rec))
        if variant.name == spot_spec.server_variant:  # what the server reads of frames sent at each quality
            for quality in JPEG_LADDER:
                label = f"{JPEG_ROW}{quality} ({variant.name}, the frame sent as JPEG at quality {quality})"
                out[label] = (through_jpeg(runner(task), quality), out[f"{variant.name} ({det.name} + {rec.name})"][1])
        else:  # a device variant: its detector with each other int8 recognizer too
            for other in rec_spec.variants:
                if other.precision == "int8" and other.name != rec.name:
                    task = spotter(repo, det, other.name)
                    label = f"candidate ({det.name} + {other.name})"
                    out[label] = (runner(task), size_of("text-detector", det) + size_of("text-recognizer", other))
    rec_device = rec_spec.variant(rec_spec.device_variant)
    int8_files = sorted((repo.root / "text-detector").glob("det.int8-*.onnx"))
    for file in [repo.root / "text-detector" / "det.onnx", *int8_files]:
        precision = file.stem.removeprefix("det.") if file.stem != "det" else "fp32"
        for size in CANDIDATE_SIZES:
            if (file.name, size) in shipped:
                continue
            det = VariantSpec(name=f"{precision}-{size}", file=file.name, input_size=size)
            task = spotter(repo, det, rec_device.name)
            label = f"candidate ({det.name} + {rec_device.name})"
            out[label] = (runner(task), file.stat().st_size + size_of("text-recognizer", rec_device))
    if rapidocr_wheel is not None:
        bytes_ = size_of("text-detector", det_spec.variant("fp32")) + size_of(
            "text-recognizer", rec_spec.variant("fp32")
        )
        bytes_ += (repo.root / "text-orientation" / "cls.onnx").stat().st_size
        out[f"rapidocr-onnxruntime ({rapidocr_wheel.name.split('-')[1]}, its defaults)"] = (
            rapidocr_runner(rapidocr_wheel, unpacked),
            bytes_,
        )
    return out


def through_jpeg(run: Run, quality: int) -> Run:
    """`run` on the frame as the server receives it when the client sends it at JPEG `quality`."""

    def sent(frame: np.ndarray) -> Prediction:
        decoded = cv2.imdecode(np.frombuffer(encode_jpeg(frame, quality), np.uint8), cv2.IMREAD_COLOR)
        assert decoded is not None  # our own encoding of a BGR frame
        return run(decoded)

    return sent


def record(path: Path, measured: dict[str, tuple[float, float]], server: str, jpeg: dict[int, float]) -> None:
    """Write each variant's measured word accuracy and ms per frame (and the server's accuracy by JPEG
    quality) into its line of model.yaml, keeping the file's comments."""
    lines = path.read_text().splitlines()
    written = set()
    for i, line in enumerate(lines):
        name = re.match(r"  - \{name: ([^,}]+)", line)
        if name is None or name.group(1) not in measured:
            continue
        accuracy, ms = measured[name.group(1)]
        line = re.sub(r", (accuracy|latency_ms): [0-9.]+", "", line)
        line = re.sub(r", jpeg_accuracy: \{[^}]*\}", "", line)
        extra = f", accuracy: {accuracy:.4f}, latency_ms: {ms:.1f}"
        if name.group(1) == server and jpeg:
            extra += ", jpeg_accuracy: {" + ", ".join(f"{q}: {a:.4f}" for q, a in jpeg.items()) + "}"
        lines[i] = line[:-1] + extra + "}"
        written.add(name.group(1))
    if written == set(measured):
        path.write_text("\n".join(lines) + "\n")
        return
    # Variants not written one per line ("- {name: ...}"): rewrite the file whole (its comments are lost).
    spec = yaml.safe_load(path.read_text())
    for variant in spec["variants"]:
        if variant["name"] in measured:
            variant["accuracy"], variant["latency_ms"] = measured[variant["name"]]
            if variant["name"] == server and jpeg:
                variant["jpeg_accuracy"] = dict(jpeg)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="text-spotter", help="another model: by its task's examples and accuracy")
    parser.add_argument("--models-dir", type=Path, help="its model repository (default: the usual one)")
    parser.add_argument("--frames", type=int, default=40, help="frames per seed")
    parser.add_argument("--seeds", type=int, nargs="+", help=f"default: {SEEDS} ({task_accuracy.SEEDS} for others)")
    parser.add_argument(
        "--rapidocr-wheel", type=Path, default=next(iter(sorted(ROOT.glob(".cache/wheels/rapidocr*.whl"))), None)
    )
    parser.add_argument("--out", type=Path, help="default: bench/results/accuracy.json (others: accuracy_MODEL.json)")
    parser.add_argument(
        "--record", action="store_true",
        help="write the variants' accuracy and latency into model.yaml (the accuracy objective reads them)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.model != "text-spotter":
        return task_accuracy.main(args)
    args.seeds = args.seeds or list(SEEDS)
    args.out = args.out or ROOT / "bench" / "results" / "accuracy.json"

    frames: list[np.ndarray] = []
    truth = GroundTruth(seed=args.seeds[0], style="real", fps=10.0, width=640, height=480, frames=[])
    for seed in args.seeds:
        images, gt = render_frames(seed, args.frames, style="real")
        frames += images
        truth.frames += gt.frames
    repo = ModelRepository(args.models_dir)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as unpacked:
        runs = contenders(repo, args.rapidocr_wheel, Path(unpacked))
        with Progress(console=console) as progress:
            bar = progress.add_task("contenders", total=len(runs))
            for name, (run, bytes_) in runs.items():
                progress.update(bar, description=name)
                score, ms = measure(run, frames, truth)
                rows.append(
                    {
                        "contender": name,
                        "f1": round(score.f1, 4),
                        "precision": round(score.precision, 4),
                        "recall": round(score.recall, 4),
                        "word_accuracy": round(score.word_accuracy, 4),
                        "ms_per_frame": round(ms, 1),
                        "model_bytes": bytes_,
                    }
                )
                progress.advance(bar)
    words = sum(len(f.words) for f in truth.frames)
    print(f"\nreal-photo sample: {len(frames)} frames 640x480 (seeds {args.seeds}), {words} words; one thread each\n")
    print("| contender | F1 | precision | recall | words read | ms/frame | MB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['contender']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['word_accuracy']:.3f} | {r['ms_per_frame']:.0f} | {r['model_bytes'] / 1e6:.2f} |"
        )
    settings = {**settings_of(args), "words": words, "frame": "640x480", "intra_op_threads": 1}
    if args.record:
        spec = repo.spec("text-spotter")
        names = {v.name for v in spec.variants}
        measured = {r["contender"].split(" ")[0]: (r["word_accuracy"], r["ms_per_frame"]) for r in rows}
        shipped = {name: figures for name, figures in measured.items() if name in names}
        jpeg = {int(k.removeprefix(JPEG_ROW)): v[0] for k, v in measured.items() if k.startswith(JPEG_ROW)}
        record(repo.root / "text-spotter" / "model.yaml", shipped, spec.server_variant, jpeg)
        print(f"recorded accuracy and latency of {sorted(shipped)} in models/text-spotter/model.yaml")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "settings": settings}, indent=2) + "\n")
    print(f"\nwrote {relative(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
