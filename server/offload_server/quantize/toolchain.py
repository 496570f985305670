"""`offload-server quantize`: build every candidate, measure it, pick the device variant, record it in model.yaml.

A candidate is a file (fp32, or a recipe's output) at an input size. Each is measured
on held-out frames of the real-photo sample: file size, latency with 1 intra-op thread (a phone's
budget), the task's accuracy and agreement with fp32 at full size. The device variant
is the fastest candidate (the smallest of the equally fast) within `budget` accuracy points
of fp32 at full size that is not slower than fp32 at its own size (beyond 5 % noise): a
slower int8 is reported, never chosen.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from offload_core import model_transfer
from offload_core.engine import ModelRepository, SessionConfig
from offload_core.engine.repository import sha256_of
from offload_core.engine.session import create_session
from offload_core.engine.spec import ModelSpec, TaskKind, VariantSpec
from offload_core.engine.tasks.base import OnnxModel, Task
from offload_core.engine.tasks.onnx_task import OnnxTask
from offload_core.engine.tasks.registry import task_class
from offload_server.quantize import recipes
from offload_server.quantize.sensitivity import rank_layers, rank_palette_layers
from offload_server.quantize.workloads import (
    EXAMPLES,
    DetectionWorkload,
    ExamplesWorkload,
    Measured,
    RecognitionWorkload,
    TextWorkload,
    Workload,
)

WORKLOADS: dict[TaskKind, type[TextWorkload]] = {
    TaskKind.TEXT_DETECTION: DetectionWorkload,
    TaskKind.TEXT_RECOGNITION: RecognitionWorkload,
}
DEVICE = SessionConfig(intra_op_threads=1)
CALIBRATION_FILE = "calibration.json"
KEEP_FLOAT_COUNTS = (8, 16)  # most sensitive layers kept in float, when full int8 loses accuracy


@dataclass
class Candidate:
    name: str
    recipe: str  # "fp32" or one of recipes.RECIPES
    file: Path
    input_size: int | None
    size_bytes: int = 0
    wire_bytes: int = 0  # what a phone downloads: the file compressed (offload_core.model_transfer)
    latency_ms: float = 0.0
    accuracy: float = 0.0
    agreement: float = 0.0
    speedup_vs_fp32_same_size: float = 1.0
    keep_float: list[str] = field(default_factory=list)
    alphabet: str | None = None  # a recognizer's head trimmed to one script (`recipes.trimmed_source`)
    outputs: list[object] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "input_size": self.input_size,
            "size_bytes": self.size_bytes,
            "wire_bytes": self.wire_bytes,
            "latency_ms": round(self.latency_ms, 2),
            "accuracy": round(self.accuracy, 4),
            "agreement": round(self.agreement, 4),
            "speedup_vs_fp32_same_size": round(self.speedup_vs_fp32_same_size, 3),
            "keep_float": self.keep_float,
            "alphabet": self.alphabet,
        }


def fp32_variant(spec: ModelSpec) -> VariantSpec:
    """The full-size float variant every candidate is derived from and judged against."""
    return spec.variant(spec.server_variant)


def recipe_file(fp32_file: str, recipe: str) -> str:
    stem = fp32_file.removesuffix(".onnx")
    return f"{stem}.{recipe}.onnx"


def load_task(spec: ModelSpec, path: Path, input_size: int | None, name: str, recipe: str | None = None) -> Task:
    variant = VariantSpec(name=name, file=path.name, input_size=input_size, recipe=recipe)
    session = create_session(path, DEVICE, float_weights=variant.weights_only)
    build: Callable[..., Task] = task_class(spec.task, spec.name)
    return build(spec, variant, OnnxModel(session, float_weights=variant.weights_only))


def workload_for(spec: ModelSpec, src: Path, frames: int, repeats: int) -> Workload:
    """The built-in text workloads by task, or the task's own `examples` and `accuracy`."""
    if spec.task in WORKLOADS:
        return WORKLOADS[TaskKind(spec.task)](spec, frames, repeats)
    reference = load_task(spec, src, None, "fp32")
    if not isinstance(reference, OnnxTask):
        raise ValueError(f"model {spec.name!r} ({spec.task}) has no quantization workload; try {list(WORKLOADS)}")
    try:
        return ExamplesWorkload(reference, frames, repeats, EXAMPLES.get(spec.task))
    except NotImplementedError as exc:
        raise ValueError(
            f"model {spec.name!r} cannot be quantized: {exc}; the toolchain needs the task's examples(count, seed) "
            "and accuracy(predictions, truths) (see docs/your-model.md)"
        ) from None


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


# Candidates this close in speed are equally fast: two runs on a shared machine differ by as much.
SAME_SPEED = 0.05


def slower_than_fp32(c: Candidate) -> bool:
    """Slower than fp32 at its own size, beyond the noise (a file that only stores its weights smaller
    runs at fp32's speed, and measures a little either side of it)."""
    return c.speedup_vs_fp32_same_size < 1.0 - SAME_SPEED


def pick(candidates: list[Candidate], budget_points: float, prefer: str = "latency") -> Candidate:
    """The fastest (or with `prefer="size"`, the smallest file; with "small-download", the smallest
    download) candidate within budget that is not slower than fp32 at its own size. Among the
    equally fast (within `SAME_SPEED`), the smallest download, then the smallest file.

    The accuracy floor is `budget` below fp32 at full size and also below the best fp32
    size: a detector can score higher at a smaller size than at its nominal one, and the
    device must not lose more than the budget to a float model simply run at a better size.
    """
    best_float = max(c.accuracy for c in candidates if c.recipe == "fp32")
    floor = best_float - budget_points / 100.0
    eligible = [c for c in candidates if c.accuracy >= floor - 1e-9 and not slower_than_fp32(c)]
    if prefer == "size":  # an app-size budget: smallest file, then fastest among equals
        return min(eligible, key=lambda c: (c.size_bytes, c.latency_ms))
    if prefer == "small-download":  # an update every week to every phone: the bytes on the wire first
        return min(eligible, key=lambda c: (c.wire_bytes, c.latency_ms))
    fastest = min(c.latency_ms for c in eligible)
    equally_fast = [c for c in eligible if c.latency_ms <= fastest * (1 + SAME_SPEED)]
    return min(equally_fast, key=lambda c: (c.wire_bytes, c.size_bytes, c.latency_ms))


@dataclass
class Built:
    """One candidate file: a recipe's output, possibly with layers kept in float."""

    key: str
    recipe: str
    path: Path
    keep_float: list[str] = field(default_factory=list)
    alphabet: str | None = None


def evaluate(
    repo: ModelRepository,
    name: str,
    budget_points: float = 2.0,
    frames: int = 12,
    repeats: int = 2,
    recipes_to_try: list[str] | None = None,
    progress: Any = None,
    sensitivity: bool = True,
    sizes: list[int | None] | None = None,
    prefer: str = "latency",
) -> Evaluation:
    """Build (calibrating once) and measure every candidate of one single-file model; pick its device variant."""
    spec = repo.spec(name)
    prefer = spec.prefer or prefer  # a model.yaml's own preference wins
    base = fp32_variant(spec)
    assert base.file is not None
    src = repo.file_of(spec, base)
    workload = workload_for(spec, src, frames, repeats)
    if sizes:
        workload.sizes = sizes
    folder = repo.root / name
    cache = folder / CALIBRATION_FILE
    builds = [Built("fp32", "fp32", src)]
    # The device's candidates read the device's script: each starts from the trimmed file (the reference,
    # the server's model, keeps every character). `suffix` keeps their names apart from untrimmed ones.
    alphabet, suffix, full = spec.device_alphabet, f"-{spec.device_alphabet}" if spec.device_alphabet else "", src
    if alphabet:
        src = recipes.trimmed_source(full, alphabet, folder / recipe_file(base.file, alphabet))
    for recipe in recipes_to_try or recipes.applicable(src):
        dst = folder / recipe_file(base.file, recipe + suffix)
        needs_calibration = recipe in recipes.STATIC and not cache.is_file()
        recipes.build(recipe, src, dst, cache, workload.calibration() if needs_calibration else None)
        builds.append(Built(recipe + suffix, recipe, dst, alphabet=alphabet))
    bar = progress.add_task(f"{name}: measuring", total=len(builds) * len(workload.sizes)) if progress else None
    candidates = [c for b in builds for c in _measure(spec, workload, b, progress, bar)]

    full_int8 = [c for c in candidates if c.recipe == "int8-qdq-pc" and not c.keep_float]
    lost = [c for c in full_int8 if c.accuracy < _fp32_at(candidates, c.input_size).accuracy - budget_points / 100]
    if sensitivity and lost:
        # Find the layers that hurt most where int8 lost, and measure whether keeping them float helps.
        ranked = rank_layers(src, "int8-qdq-pc", cache, workload.calibration_at(lost[0].input_size))
        for k in KEEP_FLOAT_COUNTS:
            keep = [node for node, _ in ranked[:k]]
            dst = folder / recipe_file(base.file, f"int8-qdq-pc-f{k}{suffix}")
            recipes.build("int8-qdq-pc", src, dst, cache, None, keep)
            built = Built(f"int8-qdq-pc-f{k}{suffix}", "int8-qdq-pc", dst, keep, alphabet)
            if progress:
                progress.update(bar, total=progress.tasks[bar].total + len(workload.sizes))
            candidates += _measure(spec, workload, built, progress, bar)

    for recipe, k in recipes.PALETTES.items():
        whole = [c for c in candidates if c.recipe == recipe and not c.keep_float]
        if (
            sensitivity
            and whole
            and whole[0].accuracy < _fp32_at(candidates, whole[0].input_size).accuracy - budget_points / 100
        ):
            # A palette for every layer lost words: palettize the layers that cost nothing, least sensitive first.
            size = whole[0].input_size
            by_error = rank_palette_layers(src, k, workload.calibration_at(size))
            keep = palette_search(spec, workload, src, k, size, by_error)
            dst = folder / recipe_file(base.file, f"{recipe}-searched{suffix}")
            recipes.build(recipe, src, dst, cache, None, keep)
            built = Built(f"{recipe}-searched{suffix}", recipe, dst, keep, alphabet)
            if progress:
                progress.update(bar, total=progress.tasks[bar].total + len(workload.sizes))
            candidates += _measure(spec, workload, built, progress, bar)

    reference = _fp32_at(candidates, workload.sizes[0])
    for c in candidates:
        c.speedup_vs_fp32_same_size = _fp32_at(candidates, c.input_size).latency_ms / c.latency_ms
        c.agreement = workload.agreement(c.outputs, reference.outputs)
    return Evaluation(name, reference, pick(candidates, budget_points, prefer), candidates)


def palette_search(
    spec: ModelSpec, workload: Workload, src: Path, k: int, size: int | None, by_error: list[tuple[str, float, int]]
) -> list[str]:
    """The layers to keep out of a `k`-value palette (stored int8 instead).

    The layers join the palette one at a time, least sensitive first (`by_error`, most sensitive
    first); one stays in only if the calibration frames still read as well as with every layer
    int8. Judged on the calibration frames, never the held-out ones that judge the candidate.
    """
    nodes = [name for name, _, _ in by_error]
    in_palette: list[str] = []
    with tempfile.TemporaryDirectory(prefix="offload-palette-") as tmp:
        prepared = recipes.prepared_float(src, Path(tmp))
        trial = Path(tmp) / "trial.onnx"

        def accuracy_with(palette: list[str]) -> float:
            keep = {n for n in nodes if n not in palette}
            onnx.save(recipes.int8_weights(recipes.palettized(onnx.load(str(prepared)), k, keep), set()), str(trial))
            return workload.tuning_accuracy(load_task(spec, trial, size, "trial", f"palette{k}"))

        floor = accuracy_with([])  # every layer int8
        for name in reversed(nodes):
            if accuracy_with([*in_palette, name]) >= floor - 1e-9:
                in_palette.append(name)
    return [n for n in nodes if n not in in_palette]


def _fp32_at(candidates: list[Candidate], size: int | None) -> Candidate:
    return next(c for c in candidates if c.recipe == "fp32" and c.input_size == size)


def _measure(spec: ModelSpec, workload: Workload, built: Built, progress: Any, bar: Any) -> list[Candidate]:
    out = []
    wire_bytes = len(model_transfer.compress(built.path.read_bytes()))
    for size in workload.sizes:
        name = candidate_name(built.key, size)
        measured: Measured = workload.measure(load_task(spec, built.path, size, name, built.recipe))
        out.append(
            Candidate(
                name,
                built.recipe,
                built.path,
                size,
                size_bytes=built.path.stat().st_size,
                wire_bytes=wire_bytes,
                latency_ms=measured.latency_ms,
                accuracy=measured.accuracy,
                keep_float=built.keep_float,
                alphabet=built.alphabet,
                outputs=measured.outputs,
            )
        )
        if progress:
            progress.advance(bar)
    return out


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
        chosen.name,
        chosen.file.name,
        sha256_of(chosen.file),
        "fp16" if chosen.recipe == "fp16" else "int8",
        chosen.input_size,
        chosen.recipe,
        chosen.keep_float,
        chosen.alphabet,
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


def _variant_line(
    name: str,
    file: str,
    sha256: str,
    precision: str,
    input_size: int | None,
    recipe: str | None,
    keep_float: list[str] | None = None,
    alphabet: str | None = None,
) -> str:
    fields = [f"name: {name}", f"file: {file}", f"sha256: {sha256}", f"precision: {precision}"]
    if input_size is not None:
        fields.append(f"input_size: {input_size}")
    if recipe is not None:
        fields.append(f"recipe: {recipe}")
    if keep_float:
        fields.append("keep_float: [" + ", ".join(f'"{n}"' for n in keep_float) + "]")
    if alphabet:
        fields.append(f"alphabet: {alphabet}")
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
            cache = repo.root / spec.name / CALIBRATION_FILE
            recipes.build(variant.recipe, src, dst, cache, None, variant.keep_float, variant.alphabet)
            repo.file_of(spec, variant)  # refuses a file whose sha256 differs from model.yaml's
            written.append(dst)
    return written
