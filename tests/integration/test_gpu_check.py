"""`bench/gpu_check.py` runs only on a GPU machine; here the script itself is proven, with CPU in place of CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def run(models_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), "--models", str(models_dir), "--out", str(out), "--repeats", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA")
def test_without_cuda_it_says_what_to_install(models_dir: Path, tmp_path: Path) -> None:
    done = run(models_dir, tmp_path / "gpu.json")
    assert done.returncode == 2
    assert "install onnxruntime-gpu" in done.stderr
    assert not (tmp_path / "gpu.json").exists()


def test_dry_run_on_cpu_writes_the_report(models_dir: Path, tmp_path: Path) -> None:
    done = run(models_dir, tmp_path / "gpu.json", "--provider", "CPUExecutionProvider", "--batches", "1", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["all_match"] is True
    detector = report["models"]["text-detector@640"]
    assert detector["input_shape"] == [1, 3, 352, 640]
    assert detector["agreement"]["mask_agreement"] == 1.0
    assert set(detector["batches"]) == {"1", "2"} and detector["best_batch"] in (1, 2)
