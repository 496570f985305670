"""`offload run` and `offload sample-video`: a client over a video, with a progress bar, a table and a plot.

It needs the `cli` extra (rich, matplotlib): `pip install 'offload-client[cli]'`. The SDK itself does not.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from offload_client.client import OffloadClient
from offload_client.local import device_files, missing_device_model
from offload_client.model_sync import ModelSyncError, pull_model, sync_variant
from offload_client.security import Security
from offload_core.engine.repository import default_models_dir
from offload_core.types import FrameResult, Where
from offload_tools.annotate import AnnotatedVideo
from offload_tools.dashboard import Dashboard, page, record_of
from offload_tools.evaluation import Score, score_frame, total
from offload_tools.linkem import Trace
from offload_tools.plot import plot_latency
from offload_tools.sample import SAMPLE_FRAMES, SAMPLE_SEED, GroundTruth, load_ground_truth, write_sample_video
from offload_tools.sources import Source, SourceError, open_source
from offload_tools.telemetry import Summary, TelemetryWriter, read_telemetry
from offload_tools.video import Newest, prefetched

console = Console()


def summary_table(results: list[FrameResult], scores: list[Score] | None, title: str, words: bool = True) -> Table:
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
        s = Summary.of([results[i] for i in idx], score, words)
        table.add_row(
            name, str(s.frames), f"{s.p50_ms:.0f}", f"{s.p95_ms:.0f}", f"{s.mean_ms:.0f}",
            f"{s.uplink_bytes / 1024:.0f}",
            f"{s.detection_f1:.3f}" if s.detection_f1 is not None else "-",
            f"{s.word_accuracy:.3f}" if s.word_accuracy is not None else "-",
        )  # fmt: skip
    return table


class RunProgress:
    """The one live line of a run: frames done (of how many, or the time so far for a live source), the
    rate, where the frames went and the median latency. Quiet when not on a terminal: CI logs stay clean."""

    def __init__(self, description: str, total: int | None) -> None:
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )  # fmt: skip
        self.progress = Progress(*columns, console=console, disable=not console.is_terminal)
        self.job = self.progress.add_task(description, total=total, status="")
        self.started = time.monotonic()
        self.where: dict[str, int] = {}
        self.latencies: list[float] = []

    def advance(self, result: FrameResult) -> None:
        self.where[result.where.value] = self.where.get(result.where.value, 0) + 1
        self.latencies.append(result.latency_ms)
        done = len(self.latencies)
        rate = done / max(1e-6, time.monotonic() - self.started)
        split = " ".join(f"{k} {v}" for k, v in sorted(self.where.items()))
        status = f"{rate:.1f} fps · {split} · p50 {statistics.median(self.latencies[-200:]):.0f} ms"
        self.progress.update(self.job, advance=1, status=status)

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def run_source(
    client: OffloadClient,
    source: Source,
    truth: GroundTruth | None,
    out: Path,
    limit: int | None = None,
    fps: float = 0.0,
    dashboard: Dashboard | None = None,
    video: AnnotatedVideo | None = None,
) -> tuple[list[FrameResult], list[Score] | None]:
    """Run every frame of `source` through the client with a progress line; write telemetry as JSON Lines.

    `fps` paces a file's or a folder's frames as a camera would (0: back to back; a live source paces
    itself); `dashboard` shows each result live; `video` gets each frame with its answer drawn. In
    continuous mode frames are decoded ahead, as a camera delivers them, and with pacing each frame's
    `latency_ms` counts from its arrival (a frame the app took late waited too). A live source runs
    until Ctrl-C (or `limit`), which ends the run cleanly: what was answered so far is reported.
    """
    started = time.monotonic()
    results: list[FrameResult] = []
    scores: list[Score] = []
    total = min(source.total, limit or sys.maxsize) if source.total else limit
    frames = source.frames(limit)
    live = Newest(frames) if source.live else None
    paced = fps > 0 and not source.live
    with TelemetryWriter(out / "telemetry.jsonl") as telemetry, RunProgress(
        f"{client.policy.name} on {source.describe()}", total
    ) as progress:  # fmt: skip
        try:
            stream = live if live is not None else prefetched(frames) if client.mode == "continuous" else frames
            for i, frame in enumerate(stream):
                arrival = started + i / fps if paced else time.monotonic()
                if paced:  # the camera's next frame is not there before its time
                    time.sleep(max(0.0, arrival - time.monotonic()))
                result = client.infer(frame)
                if paced and client.mode == "continuous":  # a frame the app took late waited too
                    result.latency_ms = (time.monotonic() - arrival) * 1000
                telemetry.write(result)
                results.append(result)
                score = None
                if truth is not None and i < len(truth.frames):
                    score = score_frame(truth.frames[i].words, result.boxes, result.texts)
                    scores.append(score)
                if dashboard is not None:
                    dashboard.publish(frame, result, score)
                if video is not None:
                    video.write(frame, result)
                progress.advance(result)
        except KeyboardInterrupt:  # a live source has no end: Ctrl-C is how a run of it ends
            console.print(f"stopped after {len(results)} frame(s)")
        finally:
            source.stop()
            if live is not None:
                live.join()
    if live is not None and live.skipped:
        console.print(f"{live.skipped} camera frame(s) skipped while the app was busy (it takes the newest)")
    if source.lost or source.reopened:
        console.print(
            f"[yellow]the stream dropped and came back {source.reopened} time(s); "
            f"~{source.lost} frame(s) lost while it was down[/yellow]"
        )
    return results, (scores if truth is not None else None)


def sync_device_model(url: str, model: str, models_dir: Path | None, security: Security) -> None:
    """Fetch the device model with progress bars: pulled whole into an empty repository, else kept current."""
    root = models_dir or default_models_dir()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as progress:
        bars: dict[str, TaskID] = {}

        def advance(name: str, received: int, total: int) -> None:
            if name not in bars:
                bars[name] = progress.add_task(f"sync {name}", total=None)
            progress.update(bars[name], completed=received, total=total or None)

        try:
            if missing_device_model(model, root):
                pull_model(url, model, root, on_progress=advance, security=security)
                return
            for stage_model, variant in device_files(model, root):
                name = f"{stage_model}/{variant}"
                progress_of = functools.partial(advance, name)
                result = sync_variant(url, stage_model, variant, on_progress=progress_of, security=security)
                if name not in bars:  # 304: not one byte came
                    advance(name, 0, 0)
                progress.update(bars[name], description=f"{name} {'downloaded' if result.downloaded else 'current'}")
        except ModelSyncError as exc:
            console.print(f"[yellow]model sync: {exc}; the device model in {root} (if any) serves[/yellow]")


def cmd_run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth_path: Path | None = args.ground_truth
    if args.sample:
        video, truth_path = write_sample_video(
            out / "sample", seed=SAMPLE_SEED, frames=args.frames or SAMPLE_FRAMES, style=args.sample_style
        )
    elif args.source is None:
        console.print(
            "[red]give a SOURCE (a video, a camera number, a stream URL, a folder of images) or --sample[/red]"
        )
        return 2
    else:
        video = args.source
    try:
        source = open_source(video, fps=args.fps)
    except SourceError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    truth = load_ground_truth(truth_path) if truth_path else None
    security = Security.of(args.tls or args.tls_ca is not None, args.tls_ca, token=args.token)
    if args.sync_models_from:
        sync_device_model(args.sync_models_from, args.model, args.models_dir, security)
    with OffloadClient(
        args.server, model=args.model, policy=args.policy, privacy=args.privacy, deadline_ms=args.deadline_ms,
        models_dir=args.models_dir, device_slowdown=args.device_slowdown, sync_models_from=args.sync_models_from,
        tls=security.tls, ca_file=security.ca_file, token=security.token, mode=args.mode,
        regions=not args.whole_frames, radio=args.radio, compute=args.compute,
    ) as client, contextlib.ExitStack() as stack:  # fmt: skip
        board = None
        if args.dashboard:
            trace = Trace.parse(args.uplink_trace, uplink=True) if args.uplink_trace else None
            board = stack.enter_context(Dashboard(client, port=args.dashboard_port, uplink_trace=trace))
            console.print(f"dashboard: [bold]{board.url}[/bold]")
        fps = args.fps or (source.fps if args.mode == "continuous" else 0.0)  # a camera runs at its rate
        saved = stack.enter_context(AnnotatedVideo(args.save_video, source.fps or 15.0)) if args.save_video else None
        results, scores = run_source(client, source, truth, out, args.frames, fps, board, saved)
        if board is not None and args.dashboard_linger:
            console.print(f"the run is over; the dashboard stays at {board.url} for {args.dashboard_linger:.0f} s")
            time.sleep(args.dashboard_linger)
    words = truth is None or any(w.text for f in truth.frames for w in f.words)  # a face sample has none to read
    summary = Summary.of(results, total(scores) if scores else None, words)
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    title = f"{args.model} · {args.policy} · {args.mode} · privacy {args.privacy} · {args.server}"
    console.print(summary_table(results, scores, title, words))
    energy = Summary.of(results)
    console.print(
        f"energy: {energy.energy_mj_per_frame:.0f} mJ per frame, radio {energy.radio_mj_per_frame:.0f} "
        f"({args.radio}, {args.compute}; docs/energy.md)"
    )
    if summary.key_frames is not None:
        console.print(
            f"continuous: {summary.key_frames} key frame(s) of {summary.frames}, {summary.tracked} answered by "
            f"tracking, answers {summary.p50_age_ms or 0:.0f} ms old (median)"
        )
    if summary.redact_repainted or summary.redact_kept_local:
        console.print(
            f"redact: {summary.redact_repainted} frame(s) painted twice, "
            f"{summary.redact_kept_local} kept on the device (a face remained)"
        )
    fallbacks = summary.fallbacks
    if fallbacks:
        console.print(f"[yellow]{fallbacks} frame(s) fell back to the device model[/yellow]")
    if saved is not None:
        console.print(f"annotated video: {saved.path} ({saved.frames} frames, {saved.codec})")
    plot = plot_latency(results, out / "latency.png", f"{args.policy}: latency per frame")
    console.print(f"telemetry: {out / 'telemetry.jsonl'}" + (f"  plot: {plot}" if plot else ""))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Draw an earlier run's telemetry on its video: frame i gets the answer the run gave frame i."""
    results = read_telemetry(args.telemetry)
    try:
        source = open_source(args.source)
    except SourceError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    with AnnotatedVideo(args.save_video, source.fps or 15.0) as video:
        for frame, result in zip(source.frames(len(results)), results, strict=False):
            video.write(frame, result)
    if video.frames < len(results):
        console.print(f"[yellow]the video ended after {video.frames} of the telemetry's {len(results)} frames[/yellow]")
    console.print(f"annotated video: {video.path} ({video.frames} frames, {video.codec})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One self-contained HTML page of a finished run (the dashboard's charts, static), for sharing."""
    run: Path = args.run
    results = read_telemetry(run / "telemetry.jsonl")
    truth_path = run / "sample" / "ground_truth.json"
    truth = load_ground_truth(truth_path) if truth_path.is_file() else None
    records: list[dict[str, object]] = []
    totals: dict[str, Score] = {}
    for i, result in enumerate(results):
        if truth is not None and i < len(truth.frames):
            key = result.where.value
            totals[key] = totals.get(key, Score()) + score_frame(truth.frames[i].words, result.boxes, result.texts)
        records.append(record_of(result, totals))
    html = page().replace("<script>", f"<script>window.OFFLOAD_RECORDS = {json.dumps(records)};\n", 1)
    out = args.out or run / "report.html"
    out.write_text(html)
    console.print(f"wrote {out} ({len(records)} frames)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    video, truth = write_sample_video(args.out, seed=args.seed, frames=args.frames, style=args.style)
    console.print(f"wrote {video} and {truth}")
    return 0
