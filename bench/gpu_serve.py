"""On a GPU machine: where does the server's throughput go under concurrency? One run, a matrix of settings.

`make bench-server` on an H200 found our server slower at concurrency 4-16 than at 1
(and far below a naive FastAPI server), a defect specific to CUDA. This script
isolates it in one short device run: for each server configuration below (set
through `OFFLOAD_*` variables) it starts `offload-server` with the detector at 640,
drives it with `bench.loadgen grpc-unary` at concurrency 1, 4 and 16, and prints
frames/s with the server's own median stage times (queue, inference, batch size).
A configuration whose inference time per batch explodes points at the CUDA call; one
whose queue time explodes at the batcher's scheduling.

    python -m bench.gpu_serve                      # writes bench/results/gpu_serve.json
    python -m bench.gpu_serve --only default spin  # a subset
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.server import loadgen, write_frames
from offload_server.testing import server_process

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},
    "one-instance": {"OFFLOAD_BATCH_INSTANCES": "1"},
    "no-io-binding": {"OFFLOAD_IO_BINDING": "false"},
    "no-batching": {"OFFLOAD_BATCHING": "false"},
    "no-spin": {"OFFLOAD_SPIN_WAIT": "false"},
    # The same as default on CUDA, where no twin is made.
    "no-busy-twin": {"OFFLOAD_SPIN_ONLY_WHEN_IDLE": "false"},
    "one-cpu-thread": {"OFFLOAD_INTRA_OP_THREADS": "1"},
    "asyncio-loop": {"OFFLOAD_EVENT_LOOP": "asyncio"},
    "one-instance-no-io-binding": {"OFFLOAD_BATCH_INSTANCES": "1", "OFFLOAD_IO_BINDING": "false"},
}


def measure(name: str, env: dict[str, str], frames: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"env": env}
    # A queue longer than the highest concurrency: every request is served, none refused.
    with server_process(["--model", "text-detector", "--max-queue", "256"], env=env) as (target, _):
        for c in args.concurrency:
            extra = ["--concurrency", str(c), "--duration", str(args.duration), "--warmup", str(args.warmup)]
            extra += ["--variant", args.variant]
            point = loadgen("grpc-unary", target, frames, *extra)
            out[f"c{c}"] = point
            server = point.get("server_p50", {})
            print(
                f"{name:28} c{c:<3} {point['fps']:8.1f} fps  p50 {point['p50_ms']:8.1f} ms  "
                f"server: queue {server.get('queue_ms', 0):6.1f}  inference {server.get('inference_ms', 0):6.1f}  "
                f"batch {server.get('batch_size', 0):4.1f}  errors {point['errors']}",
                flush=True,
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--variant", default="fp32-640", help="fp32-160: the detector as fast as on a GPU, on a CPU")
    parser.add_argument("--concurrency", type=int, nargs="+", default=CONCURRENCY)
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="run only these configurations")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_serve.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_frames(Path(tmp), 16, 80)
        for name in args.only or CONFIGS:
            try:
                results[name] = measure(name, CONFIGS[name], Path(tmp), args)
            except (RuntimeError, TimeoutError) as exc:  # one broken configuration must not cost the others
                results[name] = {"env": CONFIGS[name], "error": str(exc)[-500:]}
                print(f"{name}: failed: {exc}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
