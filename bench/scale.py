"""`make bench-scale`: offload-server against the same service on Ray Serve (1 and 2 replicas), side by side.

The same frames and load generator as `make bench-server` (1280x720 JPEG, `bench/loadgen.py` in its own
process), at concurrency 1 and 16, for the text-spotter pipeline (the real workload) and the detector
alone at 640 (where the proxy's hop weighs most). Everything shares this machine's cores, Ray's proxy
and controller too, so the ratios to offload-server are the result; the per-call overhead is Ray's c1
p50 minus offload-server's. Writes bench/results/scale.json (with a `ratios` object) and prints markdown.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.record import settings_of
from bench.server import judge, loadgen, write_frames
from offload_server.testing import server_process

ROOT = Path(__file__).resolve().parents[1]
# workload → (model, variant: "" for the model's server variant)
WORKLOADS = {"spotter": ("text-spotter", ""), "detector": ("text-detector", "fp32-640")}
CONCURRENCY = (1, 16)
REPLICAS = (1, 2)
console = Console(stderr=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def points(target: str, frames: Path, model: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    loadgen("grpc-unary", target, frames, "--model", model, "--variant", variant, "--duration", "1", "--warmup", "1")
    out = {}
    for c in CONCURRENCY:
        extra = ["--concurrency", str(c), "--duration", str(args.duration), "--warmup", str(args.warmup)]
        out[f"c{c}"] = loadgen("grpc-unary", target, frames, "--model", model, "--variant", variant, *extra)
    return out


def on_ray(replicas: int, frames: Path, model: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import ray
    from ray import serve
    from ray.serve.config import HTTPOptions, gRPCOptions

    from offload_server.ray_app import SERVICER_FUNCTION, OffloadDeployment

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        grpc_options = gRPCOptions(port=port, grpc_servicer_functions=[SERVICER_FUNCTION])
        serve.start(grpc_options=grpc_options, http_options=HTTPOptions(port=free_port()))  # not 8000: may be taken
        options = {"num_replicas": replicas, "ray_actor_options": {"num_cpus": 2 / replicas}}
        deployment = OffloadDeployment.options(**options)  # type: ignore[attr-defined]  # a Deployment
        serve.run(deployment.bind(models=[model]), name="offload")
        return points(f"127.0.0.1:{port}", frames, model, variant, args)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def ratios(r: dict[str, Any]) -> dict[str, tuple[float | None, str, str]]:
    out: dict[str, tuple[float | None, str, str]] = {}
    for workload in WORKLOADS:
        base = r[workload]["offload-server"]
        for replicas in REPLICAS:
            ray_r = r[workload][f"ray-{replicas}"]
            c1 = round(ray_r["c1"]["p50_ms"] / base["c1"]["p50_ms"], 3)
            c16 = round(ray_r["c16"]["fps"] / base["c16"]["fps"], 3)
            # Every workload is judged, by the same goals fixed in advance: Ray's proxy may add at most
            # 15 % to a lone frame and keep 80 % of the throughput at 16 in flight.
            out[f"{workload}, Ray {replicas} replica(s): c1 p50 / offload-server"] = (
                c1,
                "<= 1.15",
                judge(c1, "<= 1.15"),
            )
            out[f"{workload}, Ray {replicas} replica(s): c16 fps / offload-server"] = (
                c16,
                ">= 0.8",
                judge(c16, ">= 0.8"),
            )
    return out


def markdown(r: dict[str, Any]) -> str:
    rows = [
        "| workload | server | c1 p50 ms | c1 p99 ms | c16 p50 ms | c16 frames/s | c1 overhead ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        base = r[workload]["offload-server"]["c1"]["p50_ms"]
        for name, m in r[workload].items():
            overhead = "-" if name == "offload-server" else f"{m['c1']['p50_ms'] - base:+.1f}"
            rows.append(
                f"| {workload} | {name} | {m['c1']['p50_ms']} | {m['c1']['p99_ms']} | {m['c16']['p50_ms']} | "
                f"{m['c16']['fps']} | {overhead} |"
            )
    rows += ["", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    rows += [f"| {name} | {value} | {goal} | {verdict} |" for name, (value, goal, verdict) in r["ratios"].items()]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as tmp, Progress(*columns, console=console) as progress:
        frames = Path(tmp)
        write_frames(frames, 16, 80)
        bar = progress.add_task("", total=len(WORKLOADS) * (1 + len(REPLICAS)))
        for workload, (model, variant) in WORKLOADS.items():
            progress.update(bar, description=f"{workload}: offload-server")
            with server_process(["--model", model, "--max-queue", "256"]) as (target, _):
                results[workload] = {"offload-server": points(target, frames, model, variant, args)}
            progress.advance(bar)
            for replicas in REPLICAS:
                progress.update(bar, description=f"{workload}: Ray Serve, {replicas} replica(s)")
                results[workload][f"ray-{replicas}"] = on_ray(replicas, frames, model, variant, args)
                progress.advance(bar)
    results["ratios"] = ratios(results)
    results["settings"] = {**settings_of(args), "frame": "1280x720 JPEG", "workloads": WORKLOADS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
