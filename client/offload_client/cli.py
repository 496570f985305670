"""The `offload` command: run a client over a video, or make the sample video."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from offload_client import linkem
from offload_client.client import OffloadClient
from offload_client.evaluation import Score, score_frame, total
from offload_client.local import device_files
from offload_client.model_sync import ModelSyncError, sync_variant
from offload_client.plot import plot_latency
from offload_client.policy import POLICIES
from offload_client.privacy import Privacy
from offload_client.sample import GroundTruth, load_ground_truth, write_sample_video
from offload_client.telemetry import Summary, TelemetryWriter
from offload_client.types import FrameResult, Where
from offload_client.video import frame_count, read_frames

console = Console()
SAMPLE_SEED = 7
SAMPLE_FRAMES = 100


def summary_table(results: list[FrameResult], scores: list[Score] | None, title: str) -> Table:
    table = Table(title=title)
    for col in ("path", "frames", "p50 ms", "p95 ms", "mean ms", "uplink KB", "det F1", "word acc"):
        table.add_column(col, justify="right" if col != "path" else "left")
    groups: list[tuple[str, list[int]]] = [("all", list(range(len(results))))]
    for where in (Where.LOCAL, Where.REMOTE):
        groups.append((where.value, [i for i, r in enumerate(results) if r.where == where]))
    for name, idx in groups:
        if not idx:
            table.add_row(name, "0", *["-"] * 6)
            continue
        score = total(scores[i] for i in idx) if scores else None
        s = Summary.of([results[i] for i in idx], score)
        table.add_row(
            name, str(s.frames), f"{s.p50_ms:.0f}", f"{s.p95_ms:.0f}", f"{s.mean_ms:.0f}",
            f"{s.uplink_bytes / 1024:.0f}",
            f"{s.detection_f1:.3f}" if s.detection_f1 is not None else "-",
            f"{s.word_accuracy:.3f}" if s.word_accuracy is not None else "-",
        )  # fmt: skip
    return table


def run_video(
    client: OffloadClient, video: Path, truth: GroundTruth | None, out: Path, limit: int | None = None
) -> tuple[list[FrameResult], list[Score] | None]:
    """Run every frame through the client with a progress bar; write telemetry as JSON Lines."""
    count = min(frame_count(video), limit or sys.maxsize)
    results: list[FrameResult] = []
    scores: list[Score] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with TelemetryWriter(out / "telemetry.jsonl") as telemetry, Progress(*columns, console=console) as progress:
        job = progress.add_task(f"{client.policy.name} on {video.name}", total=count)
        for i, frame in enumerate(read_frames(video, limit)):
            result = client.infer(frame)
            telemetry.write(result)
            results.append(result)
            if truth is not None and i < len(truth.frames):
                scores.append(score_frame(truth.frames[i].words, result.boxes, result.texts))
            progress.update(job, advance=1, description=f"{client.policy.name}: {result.where.value:6}")
    return results, (scores if truth is not None else None)


def sync_device_model(url: str, model: str, models_dir: Path | None) -> None:
    """Fetch the device model's files with a progress bar (the client would otherwise do it in the background)."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as progress:
        for stage_model, variant in device_files(model, models_dir):
            bar = progress.add_task(f"sync {stage_model}/{variant}", total=None)

            def advance(received: int, total: int, bar: TaskID = bar) -> None:
                progress.update(bar, completed=received, total=total or None)

            try:
                result = sync_variant(url, stage_model, variant, on_progress=advance)
            except ModelSyncError as exc:
                console.print(f"[yellow]model sync: {exc}; the bundled model serves[/yellow]")
                return
            progress.update(
                bar, description=f"{stage_model}/{variant} {'downloaded' if result.downloaded else 'current'}"
            )


def cmd_run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth_path: Path | None = args.ground_truth
    if args.sample:
        video, truth_path = write_sample_video(out / "sample", seed=SAMPLE_SEED, frames=args.frames or SAMPLE_FRAMES)
    elif args.video is None:
        console.print("[red]give a VIDEO or --sample[/red]")
        return 2
    else:
        video = args.video
    truth = load_ground_truth(truth_path) if truth_path else None
    if args.sync_models_from:
        sync_device_model(args.sync_models_from, args.model, args.models_dir)
    with OffloadClient(
        args.server, model=args.model, policy=args.policy, privacy=args.privacy, deadline_ms=args.deadline_ms,
        models_dir=args.models_dir, device_slowdown=args.device_slowdown, sync_models_from=args.sync_models_from,
    ) as client:  # fmt: skip
        results, scores = run_video(client, video, truth, out, args.frames)
    summary = Summary.of(results, total(scores) if scores else None)
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    console.print(summary_table(results, scores, f"{args.policy} · privacy {args.privacy} · {args.server}"))
    fallbacks = summary.fallbacks
    if fallbacks:
        console.print(f"[yellow]{fallbacks} frame(s) fell back to the device model[/yellow]")
    plot = plot_latency(results, out / "latency.png", f"{args.policy}: latency per frame")
    console.print(f"telemetry: {out / 'telemetry.jsonl'}" + (f"  plot: {plot}" if plot else ""))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    video, truth = write_sample_video(args.out, seed=args.seed, frames=args.frames)
    console.print(f"wrote {video} and {truth}")
    return 0


def cmd_linkem(args: argparse.Namespace) -> int:
    config = linkem.config_from_args(
        args.uplink, args.downlink, args.delay_ms, args.queue_packets, args.outage, args.outage_mode, args.start_at
    )
    link = linkem.LinkEmulator(config, linkem.parse_address(args.listen), linkem.parse_address(args.upstream))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(linkem.run_until_cancelled(link))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offload", description="Run models on the device or offload them, per frame.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a client over a video and report latency, split and accuracy")
    run.add_argument("video", nargs="?", type=Path, help="any video OpenCV reads")
    run.add_argument("--sample", action="store_true", help="generate and use the sample video (with ground truth)")
    run.add_argument("--ground-truth", type=Path, help="ground-truth JSON for accuracy (automatic with --sample)")
    run.add_argument("--server", default="localhost:50051", help="gRPC address of offload-server")
    run.add_argument("--model", default="text-spotter")
    run.add_argument("--policy", default="adaptive", choices=sorted(POLICIES))
    run.add_argument("--privacy", default=Privacy.ALLOW.value, choices=[p.value for p in Privacy])
    run.add_argument(
        "--deadline-ms", type=float, default=1000.0, help="remote answers later than this fall back to local"
    )
    run.add_argument("--frames", type=int, help="stop after N frames")
    run.add_argument("--device-slowdown", type=float, default=1.0, help="emulate a device X times slower than this one")
    run.add_argument("--models-dir", type=Path, help="local model repository (default: the checkout's models/)")
    run.add_argument(
        "--sync-models-from", metavar="URL", help="the server's HTTP URL: fetch (and cache) its device model first"
    )
    run.add_argument("--out", type=Path, default=Path("out"), help="where telemetry, summary and plot go")
    run.set_defaults(func=cmd_run)

    sample = sub.add_parser("sample-video", help="render the synthetic street video and its ground truth")
    sample.add_argument("--seed", type=int, default=SAMPLE_SEED)
    sample.add_argument("--frames", type=int, default=SAMPLE_FRAMES)
    sample.add_argument("--out", type=Path, default=Path("out/sample"))
    sample.set_defaults(func=cmd_sample)

    link = sub.add_parser("linkem", help="a TCP proxy that emulates a cellular link from Mahimahi traces")
    link.add_argument("--listen", default="127.0.0.1:50052", help="HOST:PORT the client connects to")
    link.add_argument("--upstream", default="127.0.0.1:50051", help="HOST:PORT of the server")
    profiles = ", ".join(sorted(linkem.PROFILES))
    link.add_argument("--uplink", default="lte", help=f"Mahimahi trace file or profile ({profiles})")
    link.add_argument("--downlink", default="lte", help="Mahimahi trace file or profile")
    link.add_argument("--delay-ms", type=float, help="one-way propagation delay (default: the profile's, or 0)")
    link.add_argument("--queue-packets", type=int, default=100, help="bottleneck queue, in 1500-byte packets")
    link.add_argument("--outage", action="append", default=[], help="START+LENGTH seconds of darkness (repeatable)")
    link.add_argument("--outage-mode", choices=["stall", "reset"], default="stall")
    link.add_argument(
        "--start-at", type=float, default=0.0, metavar="S", help="begin S seconds into the traces and outage schedule"
    )
    link.set_defaults(func=cmd_linkem)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
