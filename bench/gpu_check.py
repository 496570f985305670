"""GPU check: run the PP-OCR models on CUDA, prove the outputs match the CPU's, time batch 1 and the best batch.

One script for a machine with an NVIDIA GPU and onnxruntime-gpu. It needs only
onnxruntime, numpy and OpenCV (not the offload package, whose other dependencies a
GPU box may lack), draws its own text frame, and writes one JSON file:

    python bench/gpu_check.py --models models --out bench/results/gpu.json

Exit status 0 when every model ran on CUDA and matched the CPU within tolerance,
1 when an output did not match, 2 when there is no CUDA execution provider.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

BATCHES = (1, 2, 4, 8, 16, 32, 64)
WORDS = ("OFFLOAD", "EXIT 42", "STOP", "CAFE", "MAIN ST", "OPEN 24H", "PARKING", "NO ENTRY")
# CUDA convolutions may use TF32 on Hopper: outputs agree closely, not bit for bit.
PROB_ATOL = 2e-2
MASK_AGREEMENT = 0.999


def text_frame(height: int = 720, width: int = 1280, seed: int = 7) -> np.ndarray:
    """A street-sign-like test frame: noisy gradient with dark words on light plates."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 160, width, dtype=np.float32)[None, :, None]
    frame = np.clip(ramp + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    for i, word in enumerate(WORDS):
        x, y = 60 + (i % 2) * 620, 110 + (i // 2) * 160
        cv2.rectangle(frame, (x - 15, y - 70), (x + 520, y + 30), (235, 235, 225), -1)
        cv2.putText(frame, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 5, cv2.LINE_AA)
    return frame


def detector_input(frame: np.ndarray, long_side: int) -> np.ndarray:
    """Scale so the long side fits (sides multiples of 32), then PP-OCR's (x/255 - 0.5)/0.5 in NCHW."""
    h, w = frame.shape[:2]
    ratio = long_side / max(h, w)
    size = (max(32, round(w * ratio / 32) * 32), max(32, round(h * ratio / 32) * 32))
    x = cv2.resize(frame, size).astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - 0.5) / 0.5).transpose(2, 0, 1)[None])


def recognizer_input(frame: np.ndarray) -> np.ndarray:
    """One word plate cropped and scaled to the recognizer's 48x320 line."""
    crop = cv2.resize(frame[40:140, 45:580], (320, 48)).astype(np.float32) / 255.0
    return np.ascontiguousarray(((crop - 0.5) / 0.5).transpose(2, 0, 1)[None])


def session(path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = [provider, "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]
    return ort.InferenceSession(str(path), options, providers=providers)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def run_plain(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def run_bound(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """I/O binding as the server's OnnxModel does it: host input in, output left on the GPU, one copy back."""
    binding = sess.io_binding()
    binding.bind_cpu_input(sess.get_inputs()[0].name, x)
    on_cuda = sess.get_providers()[0] == "CUDAExecutionProvider"
    binding.bind_output(sess.get_outputs()[0].name, "cuda" if on_cuda else "cpu")
    sess.run_with_iobinding(binding)
    return np.asarray(binding.copy_outputs_to_cpu()[0])


def compare(kind: str, cpu: np.ndarray, gpu: np.ndarray) -> dict[str, Any]:
    diff = np.abs(cpu.astype(np.float64) - gpu.astype(np.float64))
    out: dict[str, Any] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if kind == "detector":  # what post-processing sees: the text mask at DBNet's threshold
        out["mask_agreement"] = float(((cpu > 0.3) == (gpu > 0.3)).mean())
        out["match"] = bool(out["max_abs_diff"] <= PROB_ATOL or out["mask_agreement"] >= MASK_AGREEMENT)
    else:  # what CTC decoding sees: the best class at every step
        out["argmax_agreement"] = float((cpu.argmax(-1) == gpu.argmax(-1)).mean())
        out["match"] = bool(out["argmax_agreement"] >= MASK_AGREEMENT)
    return out


def check_model(
    name: str, path: Path, kind: str, x1: np.ndarray, repeats: int, provider: str, sizes: list[int]
) -> dict[str, Any]:
    cpu, gpu = session(path, "CPUExecutionProvider"), session(path, provider)
    result: dict[str, Any] = {"model": name, "input_shape": list(x1.shape), "providers": gpu.get_providers()}
    result["agreement"] = compare(kind, run_plain(cpu, x1), run_bound(gpu, x1))
    result["cpu_batch1_ms"] = median_ms(lambda: run_plain(cpu, x1), max(5, repeats // 5))
    result["cuda_batch1_ms"] = median_ms(lambda: run_plain(gpu, x1), repeats)
    result["cuda_batch1_iobinding_ms"] = median_ms(lambda: run_bound(gpu, x1), repeats)
    batches = {}
    for n in sizes:
        xn = np.ascontiguousarray(np.repeat(x1, n, axis=0))
        ms = median_ms(lambda xn=xn: run_bound(gpu, xn), repeats)  # type: ignore[misc]
        batches[str(n)] = {"ms": round(ms, 3), "fps": round(n / ms * 1000.0, 1)}
        print(f"  {name} {tuple(x1.shape[2:])} batch {n:>2}: {ms:8.2f} ms  {n / ms * 1000:8.1f} frames/s", flush=True)
    best = max(batches, key=lambda k: batches[k]["fps"])
    result["batches"] = batches
    result["best_batch"] = int(best)
    result["best_fps"] = batches[best]["fps"]
    return result


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    # A dry run of the script itself on a machine without a GPU: --provider CPUExecutionProvider.
    parser.add_argument("--provider", default="CUDAExecutionProvider")
    args = parser.parse_args()

    if hasattr(ort, "preload_dlls"):  # CUDA and cuDNN from the nvidia-* wheels, where they are installed
        ort.preload_dlls()
    available = ort.get_available_providers()
    report: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "available_providers": available,
        "gpu": gpu_name(),
        "python": platform.python_version(),
    }
    if args.provider not in available:
        print(f"no {args.provider} in this onnxruntime ({available}); install onnxruntime-gpu", file=sys.stderr)
        return 2
    frame = text_frame()
    checks = [
        ("text-detector@640", args.models / "text-detector" / "det.onnx", "detector", detector_input(frame, 640)),
        ("text-detector@960", args.models / "text-detector" / "det.onnx", "detector", detector_input(frame, 960)),
        ("text-recognizer", args.models / "text-recognizer" / "rec.onnx", "recognizer", recognizer_input(frame)),
    ]
    report["models"] = {}
    for name, path, kind, x in checks:
        print(f"{name}: {path}", flush=True)
        report["models"][name] = check_model(name, path, kind, x, args.repeats, args.provider, args.batches)
    report["all_match"] = all(m["agreement"]["match"] for m in report["models"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=2))
    for name, m in report["models"].items():
        print(
            f"{name}: match={m['agreement']['match']} cpu b1 {m['cpu_batch1_ms']:.2f} ms, "
            f"cuda b1 {m['cuda_batch1_ms']:.2f} ms (io-binding {m['cuda_batch1_iobinding_ms']:.2f} ms), "
            f"best batch {m['best_batch']} at {m['best_fps']} frames/s"
        )
    return 0 if report["all_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
