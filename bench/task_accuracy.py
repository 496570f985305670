"""`make bench-accuracy MODEL=NAME`: any model other than the text spotter, by its own task's measure.

Contenders, on the same held-out frames, one intra-op thread each: the variants model.yaml ships,
the files the quantization toolchain can build of the fp32 one (`RECIPES`), and the server's
variant reading the frame sent as JPEG at each quality of the client's ladder. The frames and their
truth are the task's `examples` (the face detector's: `offload_tools.faces`), the score its
`accuracy`; the seeds are none that calibrated or tuned anything. `--record` writes each shipped
variant's accuracy and ms, and the server's accuracy by JPEG quality, into model.yaml: what
`adaptive-accuracy` weighs paths by, for your model as for ours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track

from bench.record import relative, settings_of
from offload_client.policy.estimators import JPEG_LADDER
from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.image import decode_image, encode_jpeg
from offload_core.engine.tasks.onnx_task import OnnxTask
from offload_core.types import Prediction
from offload_server.quantize import recipes
from offload_server.quantize.toolchain import load_task, recipe_file
from offload_server.quantize.workloads import CALIBRATION_SEED, EXAMPLES, Examples

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (21, 22, 23)  # none tuned anything: redaction used 1-2, the toolchain 101 and 202, tests 5
RECIPES = ("int8-weights", "fp16", "int8-qdq-pc")
ONE_THREAD = SessionConfig(intra_op_threads=1)
console = Console()


Contenders = dict[str, tuple[OnnxTask, int]]


def contenders(repo: ModelRepository, model: str, examples: Examples, unpacked: Path) -> Contenders:
    """name → (task, bytes of its file); the JPEG rows reuse the server's task."""
    spec = repo.spec(model)
    out: Contenders = {}
    for variant in spec.variants:
        task = repo.load(model, variant.name, ONE_THREAD)
        assert isinstance(task, OnnxTask), f"{model}: {spec.task} is no OnnxTask; bench-accuracy measures OnnxTasks"
        out[variant.name] = (task, repo.file_of(spec, variant).stat().st_size)
    reference = out[spec.server_variant][0]
    base = repo.file_of(spec, spec.variant(spec.server_variant))
    calibration = [reference.prepare(frame).tensor for frame, _ in examples(8, CALIBRATION_SEED)]
    for recipe in [r for r in RECIPES if r not in {v.recipe for v in spec.variants}]:  # not shipped already
        dst = unpacked / recipe_file(base.name, recipe)
        recipes.build(
            recipe, base, dst, unpacked / "calibration.json", calibration if recipe in recipes.STATIC else None
        )
        task = load_task(spec, dst, None, recipe, recipe)
        assert isinstance(task, OnnxTask)
        out[f"candidate {recipe}"] = (task, dst.stat().st_size)
    return out


def measure(task: OnnxTask, frames: list[np.ndarray], truths: list[Any]) -> tuple[float, float]:
    """(the task's accuracy, median ms per frame) on these frames."""
    task.run(frames[0])  # warm-up: the first call allocates
    predictions: list[Prediction] = []
    times = []
    for frame in frames:
        start = time.perf_counter()
        predictions.append(task.run(frame)[0])
        times.append((time.perf_counter() - start) * 1000.0)
    return task.accuracy(predictions, truths), statistics.median(times)


def main(args: argparse.Namespace) -> int:
    from bench.accuracy import record  # the text benchmark's model.yaml writer, shared

    args.seeds = args.seeds or list(SEEDS)
    args.out = args.out or ROOT / "bench" / "results" / f"accuracy_{args.model}.json"
    repo = ModelRepository(args.models_dir)
    spec = repo.spec(args.model)
    server = repo.load(args.model, None, ONE_THREAD)
    assert isinstance(server, OnnxTask), f"{args.model}: bench-accuracy measures OnnxTasks"
    examples: Examples = EXAMPLES.get(spec.task) or type(server).examples
    held = [pair for seed in args.seeds for pair in examples(args.frames, seed)]
    frames, truths = [f for f, _ in held], [t for _, t in held]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as unpacked:
        runs = contenders(repo, args.model, examples, Path(unpacked))
        for name, (task, size) in track(runs.items(), description=f"{args.model}: contenders", console=console):
            accuracy, ms = measure(task, frames, truths)
            rows.append({"contender": name, "accuracy": round(accuracy, 4), "ms_per_frame": round(ms, 1),
                         "model_bytes": size})  # fmt: skip
    for quality in JPEG_LADDER:
        sent = [decode_image(encode_jpeg(f, quality)) for f in frames]  # as the server receives them
        accuracy, ms = measure(server, sent, truths)
        rows.append({"contender": f"jpeg-q{quality}", "accuracy": round(accuracy, 4), "ms_per_frame": round(ms, 1),
                     "model_bytes": 0})  # fmt: skip
    print(f"\n{args.model}: {len(frames)} frames (seeds {args.seeds}); its task's accuracy; one thread each\n")
    print("| contender | accuracy | ms/frame | MB |\n|---|---|---|---|")
    for r in rows:
        mb = f"{r['model_bytes'] / 1e6:.2f}" if r["model_bytes"] else "-"
        print(f"| {r['contender']} | {r['accuracy']:.3f} | {r['ms_per_frame']:.0f} | {mb} |")
    if args.record:
        names = {v.name for v in spec.variants}
        # model.yaml wants a time above 0: a model under 0.1 ms a frame is recorded at 0.1.
        shipped = {str(r["contender"]): (r["accuracy"], max(0.1, r["ms_per_frame"])) for r in rows
                   if r["contender"] in names}  # fmt: skip
        jpeg = {q: r["accuracy"] for q in JPEG_LADDER for r in rows if r["contender"] == f"jpeg-q{q}"}
        path = repo.root / args.model / "model.yaml"
        record(path, shipped, spec.server_variant, jpeg)
        print(f"recorded accuracy and latency of {sorted(shipped)} in {relative(path)}")
    settings = {**settings_of(args), "frames_total": len(frames), "intra_op_threads": 1}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "settings": settings}, indent=2) + "\n")
    print(f"\nwrote {relative(args.out)}")
    return 0
