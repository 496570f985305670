"""How much the "server" slows the "device" when both run on this one machine.

A benchmark gives the device one core and the server the others (affinity), but they still share
caches, memory bandwidth and the VM's scheduler. So each benchmark that runs both measures the same
device frames twice, in alternating rounds: alone (the server idle) and with the server busy (a load
generator on the server's cores, two frames in flight). The ratio goes into its results, beside the
figures it may colour.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from offload_client.local import LocalEngine
from offload_core.engine.image import encode_jpeg

ROUNDS = 3


@contextlib.contextmanager
def busy_server(target: str, frames: list[np.ndarray], cpus: set[int] | None) -> Iterator[None]:
    """A closed-loop load generator (2 in flight) against `target`, pinned to `cpus`, while the block runs."""
    with tempfile.TemporaryDirectory() as folder:
        for i, frame in enumerate(frames):
            (Path(folder) / f"{i:03d}.jpg").write_bytes(encode_jpeg(frame, 90))
        cmd = [sys.executable, "-m", "bench.loadgen", "grpc-unary", target, "--frames", folder,
               "--concurrency", "2", "--duration", "600", "--warmup", "0", "--model", "text-spotter"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if cpus:
                os.sched_setaffinity(proc.pid, cpus)
            time.sleep(3.0)  # started, connected, the server busy
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def interference(
    model: str, models_dir: Path, target: str, frames: list[np.ndarray], server_cpus: set[int] | None
) -> dict[str, float]:
    """Median device ms per frame (one thread, this machine's speed) alone and beside a busy server."""
    engine = LocalEngine(model, models_dir, threads=1)
    engine.load_all()
    alone: list[float] = []
    busy: list[float] = []
    for _ in range(ROUNDS):
        alone += [engine.run(f)[1].total_ms for f in frames]
        with busy_server(target, frames, server_cpus):
            busy += [engine.run(f)[1].total_ms for f in frames]
    a, b = statistics.median(alone), statistics.median(busy)
    return {"alone_ms": round(a, 1), "server_busy_ms": round(b, 1), "ratio": round(b / a, 3)}
