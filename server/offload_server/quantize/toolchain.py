"""`offload-server quantize`: build every candidate, measure it, pick the device variant, record it in model.yaml.

A candidate is a file (fp32, or a recipe's output) at an input size. Each is measured
on held-out sample-video frames: file size, latency with 1 intra-op thread (a phone's
budget), the task's accuracy and agreement with fp32 at full size. The device variant
is the fastest candidate within `budget` accuracy points of fp32 at full size that is
not slower than fp32 at its own size: a slower int8 is reported, never chosen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload_client.engine import ModelRepository, SessionConfig
from offload_client.engine.repository import SINGLE_MODEL_TASKS, sha256_of
from offload_client.engine.session import create_session
from offload_client.engine.spec import ModelSpec, TaskKind, VariantSpec
from offload_client.engine.tasks.base import OnnxModel, Task
from offload_server.quantize import recipes
from offload_server.quantize.workloads import DetectionWorkload, Measured, RecognitionWorkload, Workload

WORKLOADS: dict[TaskKind, type[Workload]] = {
    TaskKind.TEXT_DETECTION: DetectionWorkload,
    TaskKind.TEXT_RECOGNITION: RecognitionWorkload,
}
DEVICE = SessionConfig(intra_op_threads=1)
CALIBRATION_FILE = "calibration.json"


@dataclass
class Candidate:
    name: str
    recipe: str  # "fp32" or one of recipes.RECIPES
    file: Path
    input_size: int | None
    size_bytes: int = 0
    latency_ms: float = 0.0
    accuracy: float = 0.0
    agreement: float = 0.0
    speedup_vs_fp32_same_size: float = 1.0
    outputs: list[object] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "input_size": self.input_size,
            "size_bytes": self.size_bytes,
            "latency_ms": round(self.latency_ms, 2),
            "accuracy": round(self.accuracy, 4),
            "agreement": round(self.agreement, 4),
            "speedup_vs_fp32_same_size": round(self.speedup_vs_fp32_same_size, 3),
        }


def fp32_variant(spec: ModelSpec) -> VariantSpec:
    """The full-size float variant every candidate is derived from and judged against."""
    return spec.variant(spec.server_variant)


def recipe_file(fp32_file: str, recipe: str) -> str:
    stem = fp32_file.removesuffix(".onnx")
    return f"{stem}.{recipe}.onnx"


def load_task(spec: ModelSpec, path: Path, input_size: int | None, name: str) -> Task:
    variant = VariantSpec(name=name, file=path.name, input_size=input_size)
    return SINGLE_MODEL_TASKS[spec.task](spec, variant, OnnxModel(create_session(path, DEVICE)))


def candidate_name(recipe: str, size: int | None) -> str:
    return recipe if size is None else f"{recipe}-{size}"


@dataclass
class Evaluation:
    model: str
    fp32: Candidate
    device: Candidate
    candidates: list[Candidate]

    def report(self) -> dict[str, Any]:
        return {
            "fp32": self.fp32.row(),
            "device": self.device.row(),
            "candidates": [c.row() for c in self.candidates],
        }


def pick(candidates: list[Candidate], reference: Candidate, budget_points: float) -> Candidate:
    floor = reference.accuracy - budget_points / 100.0
    eligible = [c for c in candidates if c.accuracy >= floor and c.speedup_vs_fp32_same_size >= 1.0]
    return min(eligible, key=lambda c: c.latency_ms) if eligible else reference


def evaluate(
    repo: ModelRepository,
    name: str,
    budget_points: float = 2.0,
    frames: int = 12,
    repeats: int = 2,
    recipes_to_try: list[str] | None = None,
    progress: Any = None,
) -> Evaluation:
    """Build (calibrating once) and measure every candidate of one single-file model; pick its device variant."""
    spec = repo.spec(name)
    if spec.task not in WORKLOADS:
        raise ValueError(f"model {name!r} ({spec.task.value}) has no quantization workload; try {list(WORKLOADS)}")
    workload = WORKLOADS[spec.task](spec, frames, repeats)
    base = fp32_variant(spec)
    assert base.file is not None
    src = repo.file_of(spec, base)
    folder = repo.root / name
    files = {"fp32": src}
    for recipe in recipes_to_try or recipes.applicable(src):
        dst = folder / recipe_file(base.file, recipe)
        cache = folder / CALIBRATION_FILE
        needs_calibration = recipe in recipes.STATIC and not cache.is_file()
        recipes.build(recipe, src, dst, cache, workload.calibration() if needs_calibration else None)
        files[recipe] = dst
    sizes = workload.sizes
    plan = [(recipe, size) for size in sizes for recipe in files]
    task_bar = progress.add_task(f"{name}: measuring", total=len(plan)) if progress else None
    candidates: list[Candidate] = []
    for recipe, size in plan:
        c = Candidate(candidate_name(recipe, size), recipe, files[recipe], size)
        measured: Measured = workload.measure(load_task(spec, c.file, size, c.name))
        c.size_bytes, c.latency_ms, c.accuracy, c.outputs = (
            c.file.stat().st_size,
            measured.latency_ms,
            measured.accuracy,
            measured.outputs,
        )
        candidates.append(c)
        if progress:
            progress.advance(task_bar)
    full = sizes[0]
    reference = next(c for c in candidates if c.recipe == "fp32" and c.input_size == full)
    for c in candidates:
        same_size = next(f for f in candidates if f.recipe == "fp32" and f.input_size == c.input_size)
        c.speedup_vs_fp32_same_size = same_size.latency_ms / c.latency_ms
        c.agreement = workload.agreement(c.outputs, reference.outputs)
    return Evaluation(name, reference, pick(candidates, reference, budget_points), candidates)


def record(repo: ModelRepository, evaluation: Evaluation) -> str:
    """Write the chosen device variant (file, sha256, recipe, size) into the model's model.yaml; return its name."""
    spec = repo.spec(evaluation.model)
    chosen = evaluation.device
    if chosen.recipe == "fp32":
        variant_name = chosen.name if chosen.input_size != evaluation.fp32.input_size else spec.server_variant
        existing = [v.name for v in spec.variants]
        line = None
        if variant_name not in existing:
            base = fp32_variant(spec)
            line = _variant_line(variant_name, base.file or "", base.sha256 or "", "fp32", chosen.input_size, None)
        _rewrite_yaml(repo.root / spec.name / "model.yaml", line, variant_name)
        return variant_name
    line = _variant_line(
        chosen.name, chosen.file.name, sha256_of(chosen.file), chosen.recipe, chosen.input_size, chosen.recipe
    )
    _rewrite_yaml(repo.root / spec.name / "model.yaml", line, chosen.name)
    return chosen.name


def record_pipeline(repo: ModelRepository, name: str, stages: dict[str, str]) -> None:
    """Point a pipeline's device variant at its stages' chosen device variants."""
    spec = repo.spec(name)
    path = repo.root / name / "model.yaml"
    chosen = ", ".join(f"{role}: {stages[role]}" for role in spec.pipeline)
    prefix = f"  - {{name: {spec.device_variant}, stages:"
    lines = [f"{prefix} {{{chosen}}}}}" if ln.startswith(prefix) else ln for ln in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")


def _variant_line(name: str, file: str, sha256: str, precision: str, input_size: int | None, recipe: str | None) -> str:
    fields = [f"name: {name}", f"file: {file}", f"sha256: {sha256}", f"precision: {precision}"]
    if input_size is not None:
        fields.append(f"input_size: {input_size}")
    if recipe is not None:
        fields.append(f"recipe: {recipe}")
    return "  - {" + ", ".join(fields) + "}"


def _rewrite_yaml(path: Path, new_variant: str | None, device_variant: str) -> None:
    """Edit model.yaml in place, keeping its comments: replace or add one variant line, set device_variant."""
    lines = path.read_text().splitlines()
    if new_variant is not None:
        name = re.search(r"name: ([^,}]+)", new_variant)
        assert name is not None
        lines = [ln for ln in lines if not ln.startswith(f"  - {{name: {name.group(1)},")]
        last = max(i for i, ln in enumerate(lines) if ln.startswith("  - {name:"))
        lines.insert(last + 1, new_variant)
    lines = [f"device_variant: {device_variant}" if ln.startswith("device_variant:") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


def rebuild(repo: ModelRepository) -> list[Path]:
    """Make every recipe-built file that model.yaml names and the disk lacks (what `make models` runs)."""
    written = []
    for spec in repo.specs.values():
        if spec.pipeline:
            continue
        base = fp32_variant(spec)
        for variant in spec.variants:
            if variant.recipe is None or variant.file is None:
                continue
            dst = repo.root / spec.name / variant.file
            if dst.is_file() and variant.sha256 and sha256_of(dst) == variant.sha256:
                continue
            src = repo.file_of(spec, base)
            recipes.build(variant.recipe, src, dst, repo.root / spec.name / CALIBRATION_FILE, None, variant.keep_float)
            repo.file_of(spec, variant)  # refuses a file whose sha256 differs from model.yaml's
            written.append(dst)
    return written
