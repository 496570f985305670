"""`make bench-quant`: the quantization toolchain's measured table, and the issue's targets against it.

Builds every candidate of the text-spotter's stage models (int8 static per-channel and
per-tensor, int8 dynamic where there are MatMuls, fp16; each at several input sizes),
measures size, latency with 1 intra-op thread, accuracy and agreement with fp32 on
held-out frames of the real-photo sample, and shows which device variant the picker chooses. It
does not edit model.yaml (`offload-server quantize` does). Writes bench/results/quantization.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.record import settings_of
from offload_core.engine.repository import default_models_dir
from offload_server.quantize.cli import markdown, quantize

ROOT = Path(__file__).resolve().parents[1]


def targets(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Each target: (name, measured, goal, verdict); the goals were fixed before the toolchain was built."""
    return [
        (name, f"{value:.2f}{unit}", f"{op} {goal}{unit}", verdict(value, op, goal))
        for name, value, unit, op, goal in _measured(report)
    ]


def verdict(value: float, op: str, goal: float) -> str:
    if value != value:  # NaN: a candidate was missing
        return "unmeasured"
    return "met" if (value >= goal if op == ">=" else value <= goal) else "NOT met"


def _measured(report: dict[str, Any]) -> list[tuple[str, float, str, str, float]]:
    det = report["models"]["text-detector"]
    int8 = [
        c for c in det["candidates"] if c["recipe"] == "int8-qdq-pc" and c["input_size"] == det["fp32"]["input_size"]
    ]
    size_ratio = det["fp32"]["size_bytes"] / int8[0]["size_bytes"] if int8 else float("nan")
    bundle = report["bundle"]
    speedup = det["fp32"]["latency_ms"] / det["device"]["latency_ms"]
    loss = (det["fp32"]["accuracy"] - det["device"]["accuracy"]) * 100
    return [
        ("int8 detector smaller than fp32", size_ratio, "x", ">=", 3.0),
        ("device bundle smaller than fp32 bundle", bundle["fp32_bytes"] / bundle["device_bytes"], "x", ">=", 3.0),
        ("device detector faster than fp32 at full size", speedup, "x", ">=", 2.0),
        ("device detector accuracy loss", loss, " points", "<=", 2.0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prefer", choices=["latency", "size"], default="latency")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    evaluations, report = quantize(
        ["text-spotter"], args.budget, args.models_dir, args.frames, args.repeats, False, args.prefer
    )
    report["targets"] = [{"target": t, "measured": m, "goal": g, "verdict": v} for t, m, g, v in targets(report)]
    report["run"] = settings_of(args)  # beside the toolchain's own "settings"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantization.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(evaluations))
    bundle = report["bundle"]
    print(f"\nbundle (text-spotter stages): fp32 {bundle['fp32_bytes']} B, device {bundle['device_bytes']} B\n")
    print("| target | measured | goal | verdict |\n|---|---|---|---|")
    for t, m, g, v in targets(report):
        print(f"| {t} | {m} | {g} | {v} |")
    print(f"\nwrote {args.out / 'quantization.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
