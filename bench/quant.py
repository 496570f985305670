"""`make bench-quant`: the quantization toolchain's measured table, and the issue's targets against it.

Builds every candidate of the text-spotter's stage models (int8 static per-channel and
per-tensor, int8 dynamic where there are MatMuls, fp16; each at several input sizes),
measures size on disk and on the wire (zstd), latency with 1 intra-op thread, accuracy and agreement
with fp32 on held-out frames of the real-photo sample, and shows which device variant the picker
chooses. Palettes and pruning are measured beside int8; a patch for a one-layer update is measured
against the full download. It does not edit model.yaml (`offload-server quantize` does). Writes
bench/results/quantization.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.model_update import int8_layers, retuned
from bench.record import settings_of
from offload_core import model_transfer
from offload_core.engine import ModelRepository
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
    update = report["update"]
    return [
        ("int8 detector smaller than fp32", size_ratio, "x", ">=", 3.0),
        ("device bundle smaller than fp32 bundle", bundle["fp32_bytes"] / bundle["device_bytes"], "x", ">=", 3.0),
        ("device detector faster than fp32 at full size", speedup, "x", ">=", 2.0),
        ("device detector accuracy loss", loss, " points", "<=", 2.0),
        # Issue 54's targets: what a phone downloads, and what an update costs it.
        ("device bundle on the wire smaller than fp32 on disk", bundle["fp32_bytes"] / bundle["device_wire_bytes"],
         "x", ">=", 5.0),
        ("device words within 2 points of the device variant before", words_lost(report), " points", "<=", 2.0),
        ("shipped device bundle (model.yaml) on the wire smaller than fp32 on disk",
         bundle["fp32_bytes"] / report["shipped"]["wire_bytes"], "x", ">=", 5.0),
        ("a one-layer update downloads", update["patch_share"] * 100, " % of the file", "<=", 20.0),
    ]  # fmt: skip


def words_lost(report: dict[str, Any]) -> float:
    """Points of words the recognizer's pick loses against the variant it replaces (model.yaml's)."""
    rec = report["models"]["text-recognizer"]
    before = next(c for c in rec["candidates"] if c["name"] == report["device_before"]["text-recognizer"])
    return float(before["accuracy"] - rec["device"]["accuracy"]) * 100


def shipped(models_dir: Path) -> dict[str, Any]:
    """What a phone downloads today: model.yaml's device files of the spotter's stages, compressed."""
    repo = ModelRepository(models_dir)
    files = {}
    for model in ("text-detector", "text-recognizer"):
        spec = repo.spec(model)
        files[model] = repo.file_of(spec, spec.variant(spec.device_variant))
    wire = {model: len(model_transfer.compress(path.read_bytes())) for model, path in files.items()}
    return {
        "files": {model: path.name for model, path in files.items()},
        "bytes": sum(path.stat().st_size for path in files.values()),
        "wire_bytes": sum(wire.values()),
    }


def update_cost(models_dir: Path) -> dict[str, Any]:
    """What a phone downloads when the recognizer's device file changes one layer: a patch from the file it
    holds (`offload_core.model_transfer`), against the compressed and the plain file. Two updates: the
    second largest layer and the largest (with the head trimmed to Latin script, 12 % of the weights each)."""
    repo = ModelRepository(models_dir)
    spec = repo.spec("text-recognizer")
    path = repo.file_of(spec, spec.variant(spec.device_variant))
    old = path.read_bytes()
    layers = int8_layers(path)
    total = sum(size for _, size in layers)
    rows: list[dict[str, Any]] = []
    for layer, size in (layers[1], layers[0]):
        new = retuned(path, layer)
        rows.append(
            {
                "layer": layer,
                "layer_share_of_weights": round(size / total, 3),
                "file_bytes": len(new),
                "compressed_bytes": len(model_transfer.compress(new)),
                "patch_bytes": len(model_transfer.patch(old, new)),
            }
        )
    return {"file": path.name, "updates": rows, "patch_share": rows[0]["patch_bytes"] / rows[0]["file_bytes"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prefer", choices=["latency", "size", "small-download"], default="latency")
    parser.add_argument("--models-dir", type=Path, default=default_models_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    repo = ModelRepository(args.models_dir)
    device_before = {m: repo.spec(m).device_variant for m in ("text-detector", "text-recognizer")}
    evaluations, report = quantize(
        ["text-spotter"], args.budget, args.models_dir, args.frames, args.repeats, False, args.prefer
    )
    report["device_before"] = device_before
    report["update"] = update_cost(args.models_dir)
    report["shipped"] = shipped(args.models_dir)
    report["targets"] = [{"target": t, "measured": m, "goal": g, "verdict": v} for t, m, g, v in targets(report)]
    report["run"] = settings_of(args)  # beside the toolchain's own "settings"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantization.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(evaluations))
    bundle = report["bundle"]
    print(
        f"\nbundle (text-spotter stages): fp32 {bundle['fp32_bytes']} B, device {bundle['device_bytes']} B on disk, "
        f"{bundle['device_wire_bytes']} B on the wire (zstd); shipped (model.yaml: "
        f"{', '.join(report['shipped']['files'].values())}) {report['shipped']['wire_bytes']} B on the wire\n"
    )
    print("| update of the recognizer's device file | layer's share of weights | file | compressed | patch |")
    print("|---|---|---|---|---|")
    for u in report["update"]["updates"]:
        print(
            f"| {u['layer']} retuned | {u['layer_share_of_weights']:.0%} | {u['file_bytes']} B "
            f"| {u['compressed_bytes']} B | {u['patch_bytes']} B ({u['patch_bytes'] / u['file_bytes']:.1%}) |"
        )
    print()
    print("| target | measured | goal | verdict |\n|---|---|---|---|")
    for t, m, g, v in targets(report):
        print(f"| {t} | {m} | {g} | {v} |")
    print(f"\nwrote {args.out / 'quantization.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
