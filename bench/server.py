"""`make bench-server`: our server against the raw model and against the naive servers, side by side in one run.

Two settings, each measured whole: `real`, the PP-OCR detector at 640 (the model is the bottleneck
on a CPU), and `fast`, the same detector at 160 (~8 ms on 2 cores, as fast as at 640 on a GPU), where
the server's own costs (decode, threads, event loop, gRPC) are what limits it. For each:

1. the limit: decode → pre-process → onnxruntime → post-process in this process, no network,
   batch 1 and the best batch size;
2. `offload-server` over gRPC on loopback, unary and streaming, concurrency 1, 4, 16 and 64;
3. the naive FastAPI baselines (`bench/naive_server.py`): base64 JPEG in JSON, and the
   pre-processed tensor as a JSON array; with the uplink bytes per frame of each.

Then overload: 64 streams offering far more than the server can do, against a small queue.
Every client is a separate process (`bench/loadgen.py`); all share this machine's cores, so
the ratios, not the absolute numbers, are the result. Frames: 1280x720, pre-encoded as JPEG.
Writes bench/results/server.json (with the ratios of the run it replaces) and prints markdown.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.record import settings_of
from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.image import decode_image, encode_jpeg
from offload_core.engine.tasks.text_detection import TextDetection
from offload_server.testing import child_process, server_process
from offload_tools.sample import render_frames

ROOT = Path(__file__).resolve().parents[1]
SEED = 31
CONCURRENCY = (1, 4, 16, 64)
NAIVE_CONCURRENCY = (1, 16)
BATCHES = (1, 2, 4, 8)
# Alternations of in-process batch 1 and gRPC c1, each args.duration / 4 long. On this VM a model call
# is 2x slower for seconds at a time (one vCPU slows); many short rounds let both sides meet it alike.
ROUNDS = 8
# setting → detector variant: the real workload, and the model as fast as on a GPU.
SETTINGS = {"real": "fp32-640", "fast": "fp32-160"}
console = Console(stderr=True)


def write_frames(folder: Path, count: int, quality: int) -> list[bytes]:
    frames, _ = render_frames(SEED, count, 1280, 720)
    encoded = [encode_jpeg(f, quality) for f in frames]
    for i, data in enumerate(encoded):
        (folder / f"{i:03d}.jpg").write_bytes(data)
    return encoded


class InProcess:
    """The same pipeline with no server and no network: the limit the server is measured against."""

    def __init__(self, jpegs: list[bytes], variant: str) -> None:
        detector = ModelRepository().load("text-detector", variant, SessionConfig(intra_op_threads=0))
        assert isinstance(detector, TextDetection)
        detector.warmup(720, 1280)
        self.detector = detector
        self.jpegs = jpegs

    def pipeline(self, batch: list[bytes]) -> None:
        prepared = [self.detector.prepare(decode_image(j)) for j in batch]
        output, ms = self.detector.model(np.concatenate([p.tensor for p in prepared]))
        for i, p in enumerate(prepared):
            self.detector.complete(output[i : i + 1], p, ms)

    def latencies(self, seconds: float) -> list[float]:
        """Batch-1 latency of frames one after another for `seconds` (as long as the gRPC side is measured)."""
        out: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(out) < 20:
            start = time.perf_counter()
            self.pipeline([self.jpegs[len(out) % len(self.jpegs)]])
            out.append((time.perf_counter() - start) * 1000.0)
        return out

    def throughput(self, seconds: float) -> dict[str, Any]:
        """The best this process does: batch sizes x one or two threads (one onnxruntime call
        rarely keeps two cores busy), so the server is held to the real ceiling."""
        fps: dict[tuple[int, int], float] = {}
        jpegs = self.jpegs
        for workers in (1, 2):
            for size in BATCHES:
                batches = [[jpegs[(i * size + k) % len(jpegs)] for k in range(size)] for i in range(1000)]
                start = time.perf_counter()
                with ThreadPoolExecutor(workers) as pool:
                    done = sum(len(b) for b in pool.map(timed_out_or(self.pipeline, start + seconds), batches) if b)
                fps[(size, workers)] = done / (time.perf_counter() - start)
        best = max(fps, key=lambda k: fps[k])
        return {
            "best_fps": round(fps[best], 2),
            "best_batch": best[0],
            "best_threads": best[1],
            "fps_by_batch_and_threads": {f"b{b}_t{w}": round(v, 2) for (b, w), v in fps.items()},
        }


def side_by_side_c1(
    limit: InProcess, grpc_target: str, frames: Path, args: argparse.Namespace, variant: str
) -> tuple[float, dict[str, Any]]:
    """Batch-1 latency in-process and gRPC c1 in alternating rounds: drift on a shared machine hits both."""
    in_process: list[float] = []
    remote: list[float] = []
    answered, errors, seconds, size = 0, 0, 0.0, 0
    for _ in range(ROUNDS):
        in_process += limit.latencies(args.duration / 4)
        extra = ["--concurrency", "1", "--duration", str(args.duration / 4), "--warmup", "0.5", "--raw"]
        extra += ["--variant", variant]
        point = loadgen("grpc-unary", grpc_target, frames, *extra)
        remote += point.pop("latencies_ms")
        server = point.get("server_p50")
        answered, errors = answered + point["answered"], errors + point["errors"]
        seconds, size = seconds + args.duration / 4, point["bytes_per_frame"]
    c1 = {
        "p50_ms": round(statistics.median(remote), 2),
        "p99_ms": round(float(np.percentile(remote, 99)), 2),
        "fps": round(answered / seconds, 2),
        "answered": answered,
        "errors": errors,
        "bytes_per_frame": size,
        "server_p50": server,  # of the last round
    }
    return round(statistics.median(in_process), 2), c1


def timed_out_or(pipeline: Callable[[list[bytes]], None], until: float) -> Callable[[list[bytes]], list[bytes]]:
    """Run batches until `until`, then skip the rest (returns the batch run, or [] when skipped)."""

    def run(batch: list[bytes]) -> list[bytes]:
        if time.perf_counter() >= until:
            return []
        pipeline(batch)
        return batch

    return run


def loadgen(kind: str, target: str, frames: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.loadgen", kind, target, "--frames", str(frames), *extra]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def resident_mb(http_url: str) -> float:
    text = httpx.get(f"{http_url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes"):
            return float(line.split()[-1]) / 2**20
    return float("nan")


def overload(frames: Path, args: argparse.Namespace) -> dict[str, Any]:
    server_args = ["--model", "text-detector", "--max-queue", str(args.overload_queue)]
    with server_process(server_args) as (grpc_target, http_url):
        loadgen("grpc-unary", grpc_target, frames, "--duration", "1", "--warmup", "1")  # load the 640 variant
        rss = [resident_mb(http_url)]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                rss.append(resident_mb(http_url))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        extra = ["--concurrency", "64", "--duration", str(args.overload_seconds), "--rate", str(args.overload_rate)]
        try:
            result = loadgen("overload", grpc_target, frames, *extra)
        finally:
            stop.set()
            watcher.join()
        after = loadgen("grpc-unary", grpc_target, frames, "--duration", "2", "--warmup", "0.5")
    result["rss_max_mb"] = round(max(rss), 1)
    result["served_after"] = after["answered"] > 0 and after["errors"] == 0
    return result


def setting_rows(name: str, r: dict[str, Any]) -> list[str]:
    ip = r["inprocess"]
    rows = [
        f"| {name}: in-process batch 1 | 1 | {ip['batch1_ms']} | - | {1000 / ip['batch1_ms']:.2f} | 0 |",
        f"| {name}: in-process best (b{ip['best_batch']} x{ip['best_threads']}) | - | - | - | {ip['best_fps']} | 0 |",
    ]
    points = [("gRPC unary", r["grpc"], "grpc"), ("gRPC stream", r["grpc_stream"], "grpc")]
    points += [(f"naive {kind}", r["naive_http"][kind], kind) for kind in r["naive_http"]]
    for label, by_concurrency, size_key in points:
        for c, m in by_concurrency.items():
            size = r["bytes_per_frame"][size_key]
            rows.append(f"| {name}: {label} | {c[1:]} | {m['p50_ms']} | {m['p99_ms']} | {m['fps']} | {size} |")
    return rows


def markdown(r: dict[str, Any]) -> str:
    rows = ["| path | concurrency | p50 ms | p99 ms | frames/s | bytes/frame |", "|---|---|---|---|---|---|"]
    for name in SETTINGS:
        rows += setting_rows(f"{name} ({r[name]['variant']})", r[name])
    o = r["overload"]
    rows += [
        "",
        f"overload: {o['seconds']} s, sent {o['sent']}, answered {o['answered']}, rejected {o['rejected']}, "
        f"errors {o['errors']}, max reject {o['max_reject_ms']} ms, server RSS max {o['rss_max_mb']} MB, "
        f"served after: {o['served_after']}",
        "",
        "| target | measured | goal | verdict | run before |",
        "|---|---|---|---|---|",
    ]
    before = r.get("ratios_before", {})
    for name, (value, goal, judged) in r["ratios"].items():
        # Runs before the two settings named their targets without the "real: " prefix.
        earlier = before.get(name, before.get(name.removeprefix("real: "), ["-"]))[0]
        rows.append(f"| {name} | {value} | {goal} | {judged} | {earlier} |")
    return "\n".join(rows)


def judge(value: float | None, goal: str) -> str:
    """'met' or 'NOT met' for a goal written as '<= X', '>= X', '< X' or 'X' (equal); None: 'unmeasured'."""
    if value is None:
        return "unmeasured"
    op, _, number = goal.partition(" ")
    if not number:
        op, number = "==", op
    limit = float(number)
    ok = {"<=": value <= limit, ">=": value >= limit, "<": value < limit, "==": value == limit}[op]
    return "met" if ok else "NOT met"


def least_step(by_concurrency: dict[str, dict[str, Any]], ceiling_fps: float) -> float:
    """The smallest ratio of a level's frames/s to the level before (c1 → c4 → c16 → c64): < 1 is a fall.

    Until saturation: once the server does 90 % of the in-process best, the levels after wobble with
    the machine's noise, so each is held to the lesser of the level before and that 90 %.
    """
    fps = [float(point["fps"]) for point in by_concurrency.values()]
    return round(min(b / min(a, 0.9 * ceiling_fps) for a, b in itertools.pairwise(fps)), 3)


def setting_goals(name: str, r: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    # With the real model both servers saturate the same model on a CPU: the goal there, fixed in advance,
    # is to be no slower than the naive server beyond this machine's noise (5 %); where the server's own
    # costs show, 1.5x the naive server.
    b64_goal = ">= 0.95" if name == "real" else ">= 1.5"
    grpc, ip, naive = r["grpc"], r["inprocess"], r["naive_http"]
    errors = sum(point["errors"] for level in (grpc, r["grpc_stream"]) for point in level.values())
    errors += sum(point["errors"] for kind in naive.values() for point in kind.values())
    c16 = grpc["c16"]["fps"]
    return {
        f"{name}: load-generator errors (every contender, every level)": (errors, "0"),
        f"{name}: gRPC c1 p50 / in-process batch 1": (round(grpc["c1"]["p50_ms"] / ip["batch1_ms"], 3), "<= 1.15"),
        f"{name}: gRPC c16 fps / in-process best": (round(c16 / ip["best_fps"], 3), ">= 0.85"),
        f"{name}: gRPC c16 fps / b64_jpeg c16": (round(c16 / naive["b64_jpeg"]["c16"]["fps"], 3), b64_goal),
        # A contender that answered nothing in the window leaves the ratio unmeasured, not infinitely met.
        f"{name}: gRPC c16 fps / json_tensor c16": (
            round(c16 / tensor_fps, 3) if (tensor_fps := naive["json_tensor"]["c16"]["fps"]) else None,
            ">= 1.5",
        ),
        f"{name}: unary frames/s, least step c1→c64": (least_step(grpc, ip["best_fps"]), ">= 0.95"),
        f"{name}: stream frames/s, least step c1→c64": (least_step(r["grpc_stream"], ip["best_fps"]), ">= 0.95"),
    }


def ratios(r: dict[str, Any]) -> dict[str, tuple[float | None, str, str]]:
    """Each target's measured value, its goal and the verdict."""
    goals: dict[str, tuple[float | None, str]] = {}
    for name in SETTINGS:
        goals.update(setting_goals(name, r[name]))
    goals.update(
        {
            "overload errors": (r["overload"]["errors"], "0"),
            "overload max reject ms": (r["overload"]["max_reject_ms"], "<= 50"),
            "overload server RSS MB": (r["overload"]["rss_max_mb"], "< 2048"),
        }
    )
    return {name: (value, goal, judge(value, goal)) for name, (value, goal) in goals.items()}


def measure_setting(
    variant: str, frames: Path, jpegs: list[bytes], args: argparse.Namespace, step: Callable[[str], None]
) -> dict[str, Any]:
    """In-process limit, gRPC unary and stream at every concurrency, and both naive servers, for one variant."""
    point = ["--duration", str(args.duration), "--warmup", str(args.warmup), "--variant", variant]
    r: dict[str, Any] = {
        "variant": variant,
        "grpc": {},
        "grpc_stream": {},
        "naive_http": {"b64_jpeg": {}, "json_tensor": {}},
    }
    step(f"{variant}: in-process limit")
    limit = InProcess(jpegs, variant)
    with server_process(["--model", "text-detector", "--max-queue", "256"]) as (grpc_target, _):
        loadgen("grpc-unary", grpc_target, frames, "--duration", "1", "--warmup", "1", "--variant", variant)  # load it
        r["inprocess"] = limit.throughput(seconds=args.duration / 2)
        step(f"{variant}: in-process b1 vs gRPC c1")
        r["inprocess"]["batch1_ms"], r["grpc"]["c1"] = side_by_side_c1(limit, grpc_target, frames, args, variant)
        for kind, key in (("grpc-unary", "grpc"), ("grpc-stream", "grpc_stream")):
            for c in CONCURRENCY:
                if key == "grpc" and c == 1:
                    continue  # measured side by side with the in-process batch 1 above
                step(f"{variant}: {kind} c{c}")
                r[key][f"c{c}"] = loadgen(kind, grpc_target, frames, "--concurrency", str(c), *point)
    del limit  # its sessions' threads must not compete with the naive server's
    with child_process([sys.executable, "-m", "bench.naive_server", variant], r"ready http=(\S+)") as match:
        for kind in ("b64_jpeg", "json_tensor"):
            for c in NAIVE_CONCURRENCY:
                step(f"{variant}: naive {kind} c{c}")
                r["naive_http"][kind][f"c{c}"] = loadgen(kind, match.group(1), frames, "--concurrency", str(c), *point)
    r["bytes_per_frame"] = {
        "grpc": r["grpc"]["c1"]["bytes_per_frame"],
        "b64_jpeg": r["naive_http"]["b64_jpeg"]["c1"]["bytes_per_frame"],
        "json_tensor": r["naive_http"]["json_tensor"]["c1"]["bytes_per_frame"],
    }
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds discarded before each point")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--jpeg-quality", type=int, default=80)
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument(
        "--overload-rate", type=float, default=2.5, help="frames/s offered by each of 64 streams (160/s: ~8x capacity)"
    )
    parser.add_argument("--overload-queue", type=int, default=8, help="the deliberately small queue")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    per_setting = 1 + len(CONCURRENCY) * 2 + len(NAIVE_CONCURRENCY) * 2
    results: dict[str, Any] = {}
    columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as tmp, Progress(*columns, console=console) as progress:
        frames = Path(tmp)
        jpegs = write_frames(frames, args.frames, args.jpeg_quality)
        bar = progress.add_task("", total=per_setting * len(SETTINGS) + 1)

        def step(description: str) -> None:
            progress.update(bar, description=description, advance=1)

        for name, variant in SETTINGS.items():
            results[name] = measure_setting(variant, frames, jpegs, args, step)
        step(f"overload {args.overload_seconds:.0f} s")
        results["overload"] = overload(frames, args)
    results["ratios"] = ratios(results)
    out = args.out / "server.json"
    if out.exists():  # the run this one replaces, so that a regression shows beside it
        results["ratios_before"] = json.loads(out.read_text()).get("ratios", {})
    results["settings"] = {
        **settings_of(args),
        "models": {name: f"text-detector {variant}" for name, variant in SETTINGS.items()},
        "frame": "1280x720 JPEG",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
