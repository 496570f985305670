"""The toolchain on the real PP-OCR detector at small sizes: build, measure, pick, record, rebuild byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from offload_core.engine import ModelRepository
from offload_core.engine.repository import sha256_of
from offload_server.quantize.toolchain import Candidate, evaluate, pick, rebuild, record

pytestmark = pytest.mark.integration


def candidate(name: str, recipe: str, size: int, latency: float, accuracy: float, speedup: float = 1.0) -> Candidate:
    c = Candidate(name, recipe, Path(name), size, latency_ms=latency, accuracy=accuracy)
    c.speedup_vs_fp32_same_size = speedup
    return c


def test_the_picker_takes_the_fastest_within_budget_and_never_a_slower_int8() -> None:
    cands = [
        candidate("fp32-960", "fp32", 960, 200, 0.80),
        candidate("fp32-480", "fp32", 480, 35, 0.97),
        candidate("int8-480", "int8-qdq-pc", 480, 25, 0.90, 1.4),  # fast but 7 points below the best float
        candidate("int8-640", "int8-qdq-pc", 640, 30, 0.97, 1.3),
        candidate("fp16-320", "fp16", 320, 10, 0.99, 0.6),  # accurate and fastest, but slower than fp32 at 320
    ]
    assert pick(cands, budget_points=2).name == "int8-640"
    assert pick(cands, budget_points=10).name == "int8-480"
    cands[3].size_bytes, cands[1].size_bytes = 1_500_000, 4_600_000
    assert pick(cands, budget_points=2, prefer="size").name == "int8-640"


def test_the_picker_takes_the_smaller_of_two_equally_fast_candidates() -> None:
    # bench-quant's recognizer: int8 weights (2.9 MB) and dynamic int8 (7.6 MB), 20.7 vs 20.6 ms, both lossless.
    cands = [candidate("fp32", "fp32", 48, 22.3, 1.0), candidate("dyn", "int8-dynamic", 48, 20.6, 1.0, 1.08)]
    cands.append(candidate("weights", "int8-weights", 48, 20.7, 1.0, 1.08))
    cands[0].size_bytes, cands[1].size_bytes, cands[2].size_bytes = 10_603_000, 7_610_000, 2_883_000
    assert pick(cands, budget_points=2).name == "weights"
    cands[2].latency_ms = 23.0  # 12 % slower: no longer a tie
    assert pick(cands, budget_points=2).name == "dyn"


def fp32_only_copy(models_dir: Path, root: Path, model: str, fp32_file: str, device_variant: str) -> ModelRepository:
    """A repository of one real model that a test may rewrite: its fp32 variants only.

    The committed int8 variants are left out: the test calibrates afresh (no calibration.json), so its
    int8 file differs from theirs, and two variants of one file must agree on its sha256.
    """
    (root / model).mkdir(parents=True)
    shutil.copy(models_dir / model / fp32_file, root / model / fp32_file)
    lines = (models_dir / model / "model.yaml").read_text().splitlines()
    lines = [ln for ln in lines if "precision: int8" not in ln]
    lines = [f"device_variant: {device_variant}" if ln.startswith("device_variant:") else ln for ln in lines]
    (root / model / "model.yaml").write_text("\n".join(lines) + "\n")
    return ModelRepository(root)


@pytest.fixture
def repo_copy(models_dir: Path, tmp_path: Path) -> ModelRepository:
    return fp32_only_copy(models_dir, tmp_path / "models", "text-detector", "det.onnx", "fp32-480")


def test_the_real_detector_is_quantized_measured_recorded_and_rebuilt(repo_copy: ModelRepository) -> None:
    evaluation = evaluate(
        repo_copy, "text-detector", frames=3, repeats=1, recipes_to_try=["int8-qdq-pc"], sizes=[320, 256]
    )
    names = {c.name for c in evaluation.candidates}
    assert names == {"fp32-320", "fp32-256", "int8-qdq-pc-320", "int8-qdq-pc-256"} | {
        n
        for n in names
        if "-f" in n  # layers kept in float, when int8 lost accuracy
    }
    int8 = next(c for c in evaluation.candidates if c.name == "int8-qdq-pc-320")
    assert int8.size_bytes * 2.5 < evaluation.fp32.size_bytes  # int8 weights are ~4x smaller
    fp32_320 = next(c for c in evaluation.candidates if c.name == "fp32-320")
    assert evaluation.fp32.accuracy > 0.3  # the sample's words are found at all
    # int8 at a size reads about what fp32 reads there (per-channel QDQ loses little on a detector);
    # a broken quantization (wrong scales, a dropped node) would read next to nothing.
    assert int8.accuracy >= fp32_320.accuracy - 0.2 and int8.latency_ms > 0, (int8.accuracy, fp32_320.accuracy)

    name = record(repo_copy, evaluation)
    reloaded = ModelRepository(repo_copy.root)
    spec = reloaded.spec("text-detector")
    assert spec.device_variant == name
    chosen = spec.variant(name)
    task = reloaded.load("text-detector", name)  # loads, and its file matches the recorded sha256
    assert task.variant.name == name
    if chosen.recipe:  # an int8 pick: `make models` must rebuild exactly these bytes
        path = repo_copy.root / "text-detector" / (chosen.file or "")
        path.unlink()
        assert rebuild(reloaded) == [path]
        assert sha256_of(path) == chosen.sha256


def test_a_device_alphabet_trims_every_candidate_and_the_pick_is_rebuilt(models_dir: Path, tmp_path: Path) -> None:
    """model.yaml's `device_alphabet`: the device's candidates read Latin script; the reference keeps every
    character; the recorded pick names its alphabet, so `make models` rebuilds the same bytes."""
    root = tmp_path / "models"
    repo = fp32_only_copy(models_dir, root, "text-recognizer", "rec.onnx", "fp32")
    assert repo.spec("text-recognizer").device_alphabet == "latin"

    evaluation = evaluate(repo, "text-recognizer", frames=3, repeats=1, recipes_to_try=["int8-weights"])
    trimmed = next(c for c in evaluation.candidates if c.name == "int8-weights-latin")
    assert trimmed.alphabet == "latin" and evaluation.fp32.alphabet is None
    assert trimmed.size_bytes < 2_300_000  # int8-weights with every character: 2.95 MB
    assert trimmed.accuracy >= evaluation.fp32.accuracy - 0.05, (trimmed.accuracy, evaluation.fp32.accuracy)

    evaluation.device = trimmed
    name = record(repo, evaluation)
    chosen = ModelRepository(root).spec("text-recognizer").variant(name)
    assert chosen.alphabet == "latin"
    path = root / "text-recognizer" / (chosen.file or "")
    path.unlink()
    assert rebuild(ModelRepository(root)) == [path] and sha256_of(path) == chosen.sha256
