"""`offload-server quantize MODEL [--budget POINTS]` and `offload-server quantize --rebuild`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from offload_core.engine import ModelRepository
from offload_core.engine.repository import default_models_dir
from offload_server.quantize.toolchain import Evaluation, evaluate, rebuild, record, record_pipeline, slower_than_fp32

console = Console(stderr=True)


def markdown(evaluations: list[Evaluation]) -> str:
    rows = [
        "| model | candidate | size KB | download KB (zstd) | latency ms (1 thread) | accuracy | agreement "
        "| vs fp32 same size | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in evaluations:
        for c in e.candidates:
            mark = "**device**" if c is e.device else ("reference" if c is e.fp32 else "")
            if slower_than_fp32(c):
                mark = (mark + " slower than fp32").strip()
            rows.append(
                f"| {e.model} | {c.name} | {c.size_bytes / 1024:.0f} | {c.wire_bytes / 1024:.0f} "
                f"| {c.latency_ms:.1f} | {c.accuracy:.3f} "
                f"| {c.agreement:.3f} | {c.speedup_vs_fp32_same_size:.2f}x | {mark} |"
            )
    return "\n".join(rows)


def quantize(
    models: list[str],
    budget: float,
    models_dir: Path,
    frames: int,
    repeats: int,
    write: bool,
    prefer: str = "latency",
) -> tuple[list[Evaluation], dict[str, Any]]:
    """Evaluate (and unless `write` is False, record) each single-file model; the spotter sums its stages."""
    repo = ModelRepository(models_dir)
    names: list[str] = []
    for name in models:
        spec = repo.spec(name)
        names += list(spec.pipeline.values()) if spec.pipeline else [name]
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    evaluations = []
    with Progress(*columns, console=console) as progress:
        for name in dict.fromkeys(names):
            evaluations.append(evaluate(repo, name, budget, frames, repeats, progress=progress, prefer=prefer))
    if write:
        recorded = {e.model: record(repo, e) for e in evaluations}
        for name in models:
            spec = repo.spec(name)
            if spec.pipeline:
                record_pipeline(repo, name, {role: recorded[model] for role, model in spec.pipeline.items()})
    report: dict[str, Any] = {"models": {e.model: e.report() for e in evaluations}}
    report["bundle"] = {
        "fp32_bytes": sum(e.fp32.size_bytes for e in evaluations),
        "device_bytes": sum(e.device.size_bytes for e in evaluations),
        "fp32_wire_bytes": sum(e.fp32.wire_bytes for e in evaluations),
        "device_wire_bytes": sum(e.device.wire_bytes for e in evaluations),
    }
    report["settings"] = {
        "budget_points": budget,
        "prefer": prefer,
        "frames": frames,
        "repeats": repeats,
        "intra_op_threads": 1,
    }
    return evaluations, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-server quantize",
        description="Build int8/fp16 candidates at several input sizes, measure them, and pick the device variant.",
    )
    parser.add_argument("models", nargs="*", default=["text-spotter"], help="models (a pipeline means its stages)")
    parser.add_argument("--budget", type=float, default=2.0, help="accuracy points the device may lose (2)")
    parser.add_argument(
        "--prefer",
        choices=["latency", "size", "small-download"],
        default="latency",
        help="among candidates within budget (a model.yaml's `prefer:` wins)",
    )
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--frames", type=int, default=12, help="held-out frames to measure on")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the frames")
    parser.add_argument("--dry-run", action="store_true", help="measure and print, but leave model.yaml alone")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument(
        "--rebuild", action="store_true", help="only make the recipe-built files model.yaml names (make models)"
    )
    return parser


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    if args.rebuild:
        written = rebuild(ModelRepository(args.models_dir))
        console.print(f"rebuilt {len(written)} quantized file(s); all checksums match model.yaml")
        return
    write = not args.dry_run
    try:
        evaluations, report = quantize(
            args.models, args.budget, args.models_dir, args.frames, args.repeats, write, args.prefer
        )
    except ImportError as exc:  # the built-in models' sample frames are an extra: say which to install
        raise SystemExit(f"offload-server quantize: {exc}") from None
    print(markdown(evaluations))
    for e in evaluations:
        print(f"{e.model}: device variant {e.device.name} ({'recorded' if not args.dry_run else 'dry run'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
