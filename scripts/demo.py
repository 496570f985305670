"""`make demo`: start offload-server on free ports, run the client over the sample video, stop the server.

`make demo MODEL=face-detector` runs the second model on its own sample (real faces in street frames).
`make demo DASHBOARD=1` also serves the live dashboard on http://127.0.0.1:8765/, the frames paced at
4 per second so that it can be watched, and keeps it up for 10 minutes after the run.

What a newcomer sees: the server coming up, a progress bar, a table of where
frames ran, how fast and how accurately, and where the telemetry went.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from offload_server.testing import server_process

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Each model's sample: photographs with words for the text spotter, faces for the face detector.
SAMPLES = {"text-spotter": "real", "face-detector": "faces"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SAMPLES), default="text-spotter")
    model = parser.parse_args().model
    out = ROOT / "out" / "demo" if model == "text-spotter" else ROOT / "out" / f"demo-{model}"
    print(f"starting offload-server on free ports, serving {model} …")
    with server_process(["--model", model]) as (grpc_target, http_url):
        print(f"server ready: gRPC {grpc_target}, HTTP {http_url}")
        # A phone is several times slower than this machine's core: emulate one 5x slower, so the
        # trade-off is the real one (otherwise the device model would simply always win here).
        run = [
            str(BIN / "offload"),
            "run",
            "--sample",
            "--sample-style",
            SAMPLES[model],
            "--model",
            model,
            "--server",
            grpc_target,
            "--policy",
            "adaptive",
        ]
        if os.environ.get("DASHBOARD"):
            run += ["--dashboard", "--fps", "4", "--dashboard-linger", "600"]
        rc = subprocess.call([*run, "--device-slowdown", "5", "--out", str(out)])
        with urllib.request.urlopen(f"{http_url}/metrics", timeout=5) as r:
            served = [ln for ln in r.read().decode().splitlines() if ln.startswith("offload_requests_total")]
        print("server metrics:", *served, sep="\n  ")
    print("server stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
