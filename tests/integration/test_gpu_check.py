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


def test_the_gpu_serving_matrix_runs_its_configurations_and_reports_server_stage_times(tmp_path: Path) -> None:
    # On CPU here; on a GPU machine the same run isolates where concurrent CUDA throughput goes.
    out = tmp_path / "gpu_serve.json"
    cmd = [sys.executable, "-m", "bench.gpu_serve", "--only", "one-instance", "--duration", "0.5", "--warmup", "0.3",
           "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=SCRIPT.parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())["one-instance"]
    assert report["env"] == {"OFFLOAD_BATCH_INSTANCES": "1"}
    for point in ("c1", "c4", "c16"):
        assert report[point]["errors"] == 0 and report[point]["answered"] > 0
        assert report[point]["server_p50"]["inference_ms"] > 0
    assert "one-instance" in done.stdout and "fps" in done.stdout
