"""`make bench-roi`: what a key frame costs on the uplink, whole or as regions, and what it reads.

Part 1, per key frame (no link: bytes and words only). Continuous mode replays a sample with the
server always answering its key frames (`settle` after each: no timing in the result), once with
region requests and once with whole key frames at q90: the same stateful run (tracked, carried and
voted words) with only the uplink changed. The targets compare the two on the key frames both made.
Each key frame of the region run is also sent whole at JPEG q90/q70/q50/q35, straight to the server,
as a stateless reference. Scored on the key frames, against their ground truth: what the app shows
on that frame once its answer is in (for the region plan, the server's words plus the tracked words
it did not need to send).

Part 2, end to end (`--end-to-end`): continuous mode with the adaptive policy over the three traces
in the link emulator, regions against whole frames, as `make bench-continuous` plays it (15 fps in
real time, device x3 on one core): uplink bytes, how old an answer is when it reaches the screen,
and the words read.

Targets (issue #35) are printed with a verdict each. Results: bench/results/roi.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bench.continuous import FPS, continuous, summary
from bench.policy import DEVICE_CPUS, LINKEM_READY, SERVER_CPUS, TRACES, linkem_command
from bench.record import settings_of
from bench.seeds import CONFIRMING, TUNING, role
from offload_client import OffloadClient
from offload_client.region_plan import LOOK_BASE, LOOK_QUALITY, READ_QUALITY
from offload_client.transport import GrpcTransport
from offload_core.proto import offload_pb2 as pb
from offload_core.wire import jpeg_request, prediction_from_pb
from offload_server.testing import child_process, server_process
from offload_tools.evaluation import Score, score_frame, total
from offload_tools.sample import GroundTruth, render_frames

ROOT = Path(__file__).resolve().parents[1]
QUALITIES = (90, 70, 50, 35)
UPLINKS = {False: "whole frames", True: "regions"}
# (style, seed, frames): the pan video (the continuous sample) and the real-photo sample.
SAMPLES = {"pan": 180, "real": 90}
# The rows the targets compare: the same continuous run, regions or whole key frames, on the key frames both made.
LIKE_REGIONS = "regions, key frames both runs made"
LIKE_WHOLE = "whole key frames q90 (continuous), key frames both runs made"
console = Console()


def replay(
    target: str, model: str, frames: list[np.ndarray], truth: GroundTruth, regions: bool, quality: int,
    models_dir: Path, progress: Progress, label: str,
) -> list[tuple[int, int, Score]]:  # fmt: skip
    """(frame index, uplink bytes, score) of each key frame whose answer the server gave."""
    out = []
    job = progress.add_task(label, total=len(frames))
    with OffloadClient(
        target, model=model, policy="always-remote", mode="continuous", regions=regions, jpeg_quality=quality,
        models_dir=models_dir, deadline_ms=60_000,
    ) as oc:  # fmt: skip
        for i, frame in enumerate(frames):
            result = oc.infer(frame)
            if result.key_frame:
                result = oc.settle()
                if result.key_frame_id == i:
                    out.append((i, result.uplink_bytes, score_frame(truth.frames[i].words, result.boxes, result.texts)))
            progress.advance(job)
    progress.remove_task(job)
    return out


def sent_each(
    target: str, truth: GroundTruth, keys: list[int], request_of: Callable[[int], pb.InferRequest]
) -> tuple[int, Score]:
    """Bytes and score of `keys`, each sent as `request_of` makes it, straight to the server."""
    transport = GrpcTransport(target)
    sent, scores = 0, []
    try:
        for i in keys:
            request = request_of(i)
            sent += request.ByteSize()
            prediction = prediction_from_pb(transport.submit(request, 60.0, patient=True).result().response)
            scores.append(score_frame(truth.frames[i].words, prediction.boxes, prediction.texts))
    finally:
        transport.close()
    return sent, total(scores)


def row(name: str, keys: int, sent: int, score: Score) -> dict[str, Any]:
    return {"name": name, "key_frames": keys, "kb_per_key_frame": round(sent / max(keys, 1) / 1000, 2),
            "f1": round(score.f1, 3), "words": round(score.word_accuracy, 3)}  # fmt: skip


def per_key_frame(target: str, model: str, style: str, seed: int, count: int, quality: int,
                  models_dir: Path, progress: Progress) -> list[dict[str, Any]]:  # fmt: skip
    frames, truth = render_frames(seed, count, style=style)  # type: ignore[arg-type]
    planned = replay(target, model, frames, truth, True, quality, models_dir, progress, f"{style}: regions")
    whole = replay(target, model, frames, truth, False, 90, models_dir, progress, f"{style}: whole key frames")
    # Like with like: the key frames both runs made (the trigger is the same; an answer's timing may differ).
    both = {i for i, _, _ in planned} & {i for i, _, _ in whole}
    planned_both, whole_both = ([k for k in run if k[0] in both] for run in (planned, whole))
    keys = [i for i, _, _ in planned]
    look, scale = LOOK_BASE
    name = (f"regions (views: q{look} x{scale}, q{READ_QUALITY} where the device finds text; "
            f"new areas q{min(quality, LOOK_QUALITY)}; words to read q{READ_QUALITY})")  # fmt: skip
    rows = [row(name, len(keys), sum(b for _, b, _ in planned), total(s for *_, s in planned))]
    for label, run in ((LIKE_REGIONS, planned_both), (LIKE_WHOLE, whole_both)):
        rows.append(row(label, len(run), sum(b for _, b, _ in run), total(s for *_, s in run)))

    def whole_at(quality: int) -> Callable[[int], pb.InferRequest]:
        return lambda i: jpeg_request(model, i, frames[i], quality, 60_000)[0]

    for q in QUALITIES:
        sent, score = sent_each(target, truth, keys, whole_at(q))
        rows.append(row(f"whole frame q{q}", len(keys), sent, score))
    return rows


def end_to_end(target: str, model: str, seed: int, args: argparse.Namespace,
               progress: Progress) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Continuous mode at camera rate over each trace, regions against whole frames: key frames always on
    the server (the uplink's own effect), and where the adaptive policy picks."""
    frames, truth = render_frames(seed, int(args.seconds * FPS), style="pan")
    traces = sorted(p.stem for p in TRACES.glob("*.up") if p.with_suffix(".down").exists())
    runs = {}
    for trace in traces:
        linkem = linkem_command(target, TRACES / f"{trace}.up", TRACES / f"{trace}.down", 20.0, (), args.trace_offset)
        for policy, regions in itertools.product(("always-remote", "adaptive"), (False, True)):
            name = f"{'server' if policy == 'always-remote' else 'adaptive'} key frames, {UPLINKS[regions]}"
            with child_process(linkem, LINKEM_READY, SERVER_CPUS) as link, OffloadClient(
                f"127.0.0.1:{link.group(1)}", model=model, policy=policy, mode="continuous", regions=regions,
                jpeg_quality=args.quality, models_dir=args.models_dir, device_slowdown=3.0,
            ) as oc:  # fmt: skip
                shown = continuous(oc, frames, truth, progress, f"{name} on {trace}")
                runs[f"{name}/{trace}"] = summary(shown, truth)
    return runs


def verdicts(rows: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    out = []
    for sample in dict.fromkeys(r["sample"] for r in rows):
        mine = {r["name"]: r for r in rows if r["sample"] == sample}
        plan, q90 = mine[LIKE_REGIONS], mine[LIKE_WHOLE]
        share = plan["kb_per_key_frame"] / q90["kb_per_key_frame"]
        gap = (q90["words"] - plan["words"]) * 100
        verdict = f"{share:.0%} of the bytes, words {-gap:+.1f} points: {met(share <= 0.4 and gap <= 1)}"
        out.append((f"{sample}: regions' bytes <= 40% of whole q90 key frames', words within 1 point", verdict))
    for key in runs:
        if not key.startswith("server key frames, regions/"):
            continue
        trace = key.split("/", 1)[1]
        planned, wholes = runs[key], runs[f"server key frames, whole frames/{trace}"]
        cut = 1 - planned["uplink_bytes"] / max(1, wholes["uplink_bytes"])
        out.append((f"{trace}: uplink >= 30% below whole frames", f"{cut:.0%} below: {met(cut >= 0.3)}"))
        if trace.startswith("Verizon"):
            a, b = planned["p50_applied_age_ms"], wholes["p50_applied_age_ms"]
            ratio = b / a if a and b else None
            verdict = f"{b:.0f} ms vs {a:.0f} ms: x{ratio:.2f}: {met(ratio >= 2)}" if ratio else "no answers: NOT met"
            out.append((f"{trace}: answers reach the screen >= 2x sooner (median age when applied)", verdict))
    return out


def run_table(runs: dict[str, dict[str, Any]]) -> str:
    head = "| continuous mode | trace | uplink KB | answer age when applied, p50 ms | answer age p50 ms | F1 | words |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for key, r in runs.items():
        name, trace = key.split("/", 1)
        lines.append(f"| {name} | {trace} | {r['uplink_bytes'] / 1000:.0f} | {r['p50_applied_age_ms']:.0f} | "
                     f"{r['p50_age_ms']:.0f} | {r['detection_f1']:.3f} | {r['word_accuracy']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| sample | uplink | key frames | KB / key frame | F1 | words |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['sample']} | {r['name']} | {r['key_frames']} | {r['kb_per_key_frame']} | {r['f1']} | {r['words']} |"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The results as the docs show them: both tables and the verdicts."""
    settings = result["settings"]
    head = "Per key frame (continuous mode; each key frame answered before the next frame):"
    parts = [f"{head}\n\n{table(result['per_key_frame'])}"]
    if result["end_to_end"]:
        head = (f"End to end (pan seed {settings['seed']}, 15 fps in real time, whole key frames at "
                f"q{settings['quality']}, device x3 on one core):")  # fmt: skip
        parts.append(f"{head}\n\n{run_table(result['end_to_end'])}")
    parts.append("\n".join(f"- {what}: **{verdict}**" for what, verdict in settings["verdicts"].items()))
    parts.append(
        f"At {settings.get('commit', 'an unrecorded commit')}; seed {settings['seed']}: "
        f"{settings.get('role', 'tuning')} (bench/seeds.py)."
    )
    return "\n\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    confirming, tuned = CONFIRMING["roi"], ", ".join(str(t.seed) for t in TUNING["roi"])
    parser.add_argument(
        "--seed",
        type=int,
        default=confirming.seed,
        help=f"the samples' seed (the plan was tuned on {tuned}; quote {confirming.seed}: bench/seeds.py)",
    )
    parser.add_argument(
        "--trace-offset", type=float, default=confirming.trace_offset, help="end to end: seconds into every trace"
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=50,
        help=f"JPEG quality of whole key frames (FIND crops: {LOOK_QUALITY} at most; READ: {READ_QUALITY})",
    )
    parser.add_argument("--end-to-end", action="store_true", help="also over the three traces, at camera rate")
    parser.add_argument("--seconds", type=float, default=12.0, help="end to end: length of the pan video")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "roi.json")
    args = parser.parse_args()  # fmt: skip
    model = "text-spotter"
    settings = {**settings_of(args), "role": role("roi", args.seed, args.trace_offset)}
    rows: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        with server_process(["--model", model, "--models-dir", str(args.models_dir)]) as (target, _):
            for style, count in SAMPLES.items():
                for r in per_key_frame(target, model, style, args.seed, count, args.quality, args.models_dir,
                                       progress):  # fmt: skip
                    rows.append({"sample": f"{style} seed {args.seed}", **r})
        if args.end_to_end:
            if DEVICE_CPUS:
                os.sched_setaffinity(0, DEVICE_CPUS)
            server_args = ["--model", model, "--models-dir", str(args.models_dir), "--intra-op-threads", "1"]
            with server_process(server_args, SERVER_CPUS) as (target, _):
                runs = end_to_end(target, model, args.seed, args, progress)
    lines = verdicts(rows, runs)
    settings["verdicts"] = dict(lines)
    result = {"settings": settings, "per_key_frame": rows, "end_to_end": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + markdown(result))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
