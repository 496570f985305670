"""What every benchmark result records beside its figures: the command, the settings, the machine.

Paths are written relative to the repository (results are committed and read on other machines).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def relative(value: object) -> object:
    """A path inside the repository as a relative one; other paths by name only; other values as they are."""
    if not isinstance(value, Path):
        return value
    try:
        return str(value.resolve().relative_to(ROOT))
    except ValueError:
        return value.name if value.is_absolute() else str(value)


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {"cpu": cpu, "cores": cores, "python": platform.python_version(), "system": platform.platform(terse=True)}
    return {**out, **accelerator()}


def accelerator() -> dict[str, str]:
    """The GPU and onnxruntime build a result came from: a GPU figure without them cannot be compared."""
    import onnxruntime as ort

    out = {"onnxruntime": f"{ort.__version__} ({', '.join(ort.get_available_providers())})"}
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30)
        out["gpu"] = done.stdout.strip() or done.stderr.strip()
    return out


# What a figure depends on: a change elsewhere (docs, tests, results) does not make it another commit's.
CODE = ["core", "client", "server", "bench", ":!bench/results", "models", "proto", "Makefile"]


def commit() -> str:
    """The commit the benchmark ran on, "+changes" when its code differed from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + ("+changes" if status.stdout.strip() else "")


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments, the command line that gave them, the commit and the machine."""
    script = Path(sys.argv[0])
    command = " ".join(["python", str(relative(script)), *sys.argv[1:]])
    values = {k: relative(v) for k, v in vars(args).items()}
    return {**values, "command": command, "commit": commit(), "machine": machine()}
