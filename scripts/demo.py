"""`make demo`: start offload-server on free ports, run the client over the sample video, stop the server.

What a newcomer sees: the server coming up, a progress bar, a table of where
frames ran, how fast and how accurately, and where the telemetry went.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_ready(server: subprocess.Popen[str], timeout_s: float = 120.0) -> tuple[str, str]:
    """Read the server's ready line (it was started on port 0) and check /readyz."""
    deadline = time.monotonic() + timeout_s
    assert server.stdout is not None
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            raise SystemExit(f"offload-server exited with {server.wait()} before it was ready")
        print(f"  server | {line.rstrip()}")
        match = re.search(r"ready grpc=(\S+) http=(\S+)", line)
        if match:
            grpc_target, http_url = match.groups()
            with urllib.request.urlopen(f"{http_url}/readyz", timeout=5) as r:
                assert r.status == 200
            return grpc_target, http_url
    raise SystemExit("offload-server did not become ready in time")


def main() -> int:
    out = ROOT / "out" / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    print("starting offload-server on free ports …")
    server = subprocess.Popen(
        [str(BIN / "offload-server"), "--grpc-port", "0", "--http-port", "0", "--model", "text-spotter"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        grpc_target, http_url = wait_ready(server)
        rc = subprocess.call(
            [
                str(BIN / "offload"),
                "run",
                "--sample",
                "--server",
                grpc_target,
                "--policy",
                "adaptive",
                "--out",
                str(out),
            ],
            env=env,
        )
        with urllib.request.urlopen(f"{http_url}/metrics", timeout=5) as r:
            served = [ln for ln in r.read().decode().splitlines() if ln.startswith("offload_requests_total")]
        print("server metrics:", *served, sep="\n  ")
        return rc
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        print(f"server stopped (exit {server.returncode})")


if __name__ == "__main__":
    sys.exit(main())
