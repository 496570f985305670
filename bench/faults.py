"""`make bench-faults`: real faults against a real server, every frame accounted for; the cost of security.

For each fault: frames the client gave, frames answered, frames lost (must be 0), and how long after
the recovery the first frame went to the server again:
- `kill -9` of the server while a client streams frames, then a restart on the same ports;
- a 3 s link outage in the link emulator (`offload linkem`) between client and server;
- overload: 64 raw streams offering ~8x the server's capacity against a queue of 8 (answered by the server or
  refused: they have no device), and an SDK client beside them (answered by the server or, after a refusal,
  by its device);
- the full fuzz run (bench/fuzz.py) against all four models: cases, statuses, crashes, and the
  server's RSS growth from a baseline taken after every variant has served one good frame.
Then the cost of security, side by side in alternating rounds: TLS vs plaintext p50 at concurrency 1
(target <= 1.10x) and frames/s at 16 (target >= 0.90x), and the token check's overhead; and what
privacy `redact` costs the device per 640x480 frame on one thread (target <= 15 ms).
Writes bench/results/faults.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx

from bench.fuzz import DOCUMENTED, MODELS, fuzz
from bench.record import settings_of
from bench.server import judge, loadgen, resident_mb, write_frames
from bench.steps import Steps
from offload_client import OffloadClient, Where
from offload_core.engine.image import encode_jpeg
from offload_core.proto import offload_pb2 as pb
from offload_core.proto import offload_pb2_grpc as pb_grpc
from offload_server.auth import Tokens
from offload_server.testing import server_process, unused_port
from offload_tools.sample import render_frames
from tests.pki import CertificateAuthority

ROOT = Path(__file__).resolve().parents[1]
# A frame's whole budget in these runs (a 1 s deadline): past it, a call that returns is a frame lost.
ANSWER_BOUND_S = 5.0
BIN = Path(sys.executable).parent


@contextmanager
def server_on(
    grpc_port: int, http_port: int, *extra: str, cpus: set[int] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`offload-server` on fixed ports (a restart comes back at the same address), on `cpus` if given;
    killed at the end."""
    cmd = [str(BIN / "offload-server"), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
           "--model", "text-spotter", *extra]  # fmt: skip
    if cpus and shutil.which("taskset"):
        # Pinned by taskset, not a preexec_fn: Python code between fork and exec in a process whose gRPC
        # threads are running aborted the child (SIGABRT in absl's mutex) in make bench-fleet's restart.
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "ready grpc=" in line:
            break
    else:
        raise RuntimeError(f"offload-server exited with {proc.wait()} before it was ready")
    threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class Streamer:
    """A client answering frames back to back in a thread; every frame's (start time, where) is kept.

    Each frame is counted when it is handed to the client, before anything can go wrong. It is answered
    only if `infer` returns within ANSWER_BOUND_S with an answer from a path (`where` local or remote);
    a fallback to the device counts (the device answered; `error` says why the server did not). An
    exception, a result with no answer (`where` none), a late return or a call still hanging at the
    end is a frame lost.
    """

    def __init__(self, target: str, **client: Any) -> None:
        self.frames, _ = render_frames(3, 24)
        self.target, self.client = target, client
        self.submitted = 0
        self.results: list[tuple[float, Where]] = []
        self.fallbacks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with OffloadClient(self.target, **self.client) as oc:
            i = 0
            while not self._stop.is_set():
                started = time.monotonic()
                self.submitted += 1
                try:
                    result = oc.infer(self.frames[i % len(self.frames)])
                except Exception:
                    result = None
                in_time = time.monotonic() - started <= ANSWER_BOUND_S
                if result is not None and result.where != Where.NONE and in_time:
                    self.results.append((started, result.where))
                    self.fallbacks += result.error is not None
                i += 1

    def __enter__(self) -> Streamer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(ANSWER_BOUND_S + 5)  # a call still running after this is hanging: counted lost

    def summary(self, recovered_at: float) -> dict[str, Any]:
        back = [t for t, where in self.results if t >= recovered_at and where == Where.REMOTE]
        return {
            "frames_sent": self.submitted,
            "frames_answered": len(self.results),
            "answered_by_a_fallback": self.fallbacks,
            "frames_lost": self.submitted - len(self.results),
            "remote_again_s": round(back[0] - recovered_at, 2) if back else None,
        }


def kill_9() -> dict[str, Any]:
    grpc_port, http_port = unused_port(), unused_port()
    target = f"127.0.0.1:{grpc_port}"
    with Streamer(target, policy="always-remote", deadline_ms=1000) as stream:
        with server_on(grpc_port, http_port) as proc:
            time.sleep(4)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        time.sleep(3)
        with server_on(grpc_port, http_port):
            ready = time.monotonic()
            time.sleep(6)
    return stream.summary(ready)


def link_outage() -> dict[str, Any]:
    with server_process(["--model", "text-spotter"]) as (grpc_target, _):
        port = unused_port()
        cmd = [str(BIN / "offload"), "linkem", "--listen", f"127.0.0.1:{port}", "--upstream", grpc_target,
               "--uplink", "wifi", "--downlink", "wifi", "--outage", "5+3"]  # fmt: skip
        link = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert link.stdout is not None
            started = time.monotonic()
            next(line for line in link.stdout if "listening" in line)
            with Streamer(f"127.0.0.1:{port}", policy="always-remote", deadline_ms=1000) as stream:
                time.sleep(13)
        finally:
            link.send_signal(signal.SIGINT)
            link.wait(10)
    return stream.summary(started + 8)  # the outage ends 8 s into the emulator's schedule


def overload_run(frames: Path, seconds: float) -> dict[str, Any]:
    """64 raw gRPC streams (no device behind them) offer ~8x the capacity of a server whose queue holds 8;
    one SDK client streams beside them. Each raw frame is answered by the server or refused
    (RESOURCE_EXHAUSTED); the SDK client's are answered by the server or, after a refusal, by its device."""
    server_args = ["--model", "text-detector", "--max-queue", "8"]
    with server_process(server_args) as (grpc_target, _):
        loadgen("grpc-unary", grpc_target, frames, "--duration", "1", "--warmup", "1")  # load the 640 variant
        extra = ["--concurrency", "64", "--duration", str(seconds), "--rate", "2.5"]
        with Streamer(grpc_target, model="text-detector", policy="always-remote", deadline_ms=1000) as sdk:
            raw = loadgen("overload", grpc_target, frames, *extra)
        client = sdk.summary(time.monotonic())
    by_device = client["answered_by_a_fallback"]
    return {
        "raw_streams": {
            "frames_sent": raw["sent"],
            "answered_by_the_server": raw["answered"],
            "refused": raw["rejected"],
            "frames_lost": raw["errors"],
            "max_reject_ms": raw["max_reject_ms"],
        },
        "sdk_client": {
            "frames_sent": client["frames_sent"],
            "answered_by_the_server": client["frames_answered"] - by_device,
            "answered_by_the_device_after_a_refusal": by_device,
            "frames_lost": client["frames_lost"],
        },
        "frames_lost": raw["errors"] + client["frames_lost"],
    }


def warm_every_variant(target: str) -> None:
    """One good frame through every variant: the server loads variants on first use, and that memory is
    no growth caused by bad requests."""
    frame = encode_jpeg(render_frames(3, 1)[0][0])
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.OffloadStub(channel)
        for model in stub.ListModels(pb.ListModelsRequest(), timeout=30).models:
            for variant in model.variants:
                request = pb.InferRequest(model=model.name, variant=variant.name, encoded=pb.EncodedImage(data=frame))
                stub.Infer(request, timeout=120)


def fuzz_run(cases: int) -> dict[str, Any]:
    served = [arg for model in MODELS for arg in ("--model", model)]
    with server_process(served) as (grpc_target, http_url):
        warm_every_variant(grpc_target)
        before = resident_mb(http_url)
        start = time.monotonic()
        report = fuzz(grpc_target, cases)
        took = time.monotonic() - start
        ready = httpx.get(f"{http_url}/readyz", timeout=10).status_code == 200
        after = resident_mb(http_url)
    return {
        "cases": report.cases,
        "statuses": dict(report.statuses),
        "undocumented": report.undocumented,
        "crashes": 0 if ready else 1,
        "ready_after": ready,
        "rss_growth_mb": round(after - before, 1),
        "seconds": round(took, 1),
    }


def security_cost(frames: Path, rounds: int, seconds: float) -> dict[str, Any]:
    """Plaintext, TLS, and TLS with tokens, measured in alternating rounds at concurrency 1 and 16."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ca = CertificateAuthority(folder)
        cert = ca.issue("server", server=True)
        tokens = folder / "tokens.txt"
        tokens.write_text("bench-token\n")
        tls = ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]
        trust = ["--tls-ca", str(ca.cert)]
        setups = {
            "plaintext": ([], []),
            "tls": (tls, trust),
            "tls+token": ([*tls, "--auth-tokens-file", str(tokens)], [*trust, "--token", "bench-token"]),
        }
        points: dict[str, dict[int, list[dict[str, Any]]]] = {name: {1: [], 16: []} for name in setups}
        for _ in range(rounds):
            for name, (server_args, client_args) in setups.items():
                with server_process(["--model", "text-detector", *server_args]) as (target, _):
                    loadgen("grpc-unary", target, frames, "--duration", "1", "--warmup", "1", *client_args)
                    for c in (1, 16):
                        extra = ["--concurrency", str(c), "--duration", str(seconds), "--warmup", "1", *client_args]
                        points[name][c].append(loadgen("grpc-unary", target, frames, *extra))
    out: dict[str, Any] = {"token_check_us": token_check_us()}
    for name, by_c in points.items():
        out[name] = {
            "c1_p50_ms": round(statistics.median(p["p50_ms"] for p in by_c[1]), 2),
            "c16_fps": round(statistics.median(p["fps"] for p in by_c[16]), 2),
            "errors": sum(p["errors"] for c in by_c.values() for p in c),
        }
    return out


def redaction_cost() -> dict[str, float]:
    """Privacy `redact` on one thread, verification included, per 640x480 frame with faces (bench-redact's frames)."""
    from bench.redaction import cost
    from offload_tools.faces import face_frames

    return cost([f.image for f in face_frames(seed=2, count=40)[0]])


def token_check_us(calls: int = 20_000) -> float:
    """The token check alone, in microseconds per call (sha256 and a constant-time compare per known token)."""
    tokens = Tokens.from_lines([f"token-{i}" for i in range(10)])
    start = time.perf_counter()
    for i in range(calls):
        tokens.allows(f"Bearer token-{i % 12}")
    return round((time.perf_counter() - start) / calls * 1e6, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fuzz-cases", type=int, default=5000)
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of plaintext, TLS and TLS+token")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds measured per security point")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp)
        write_frames(frames, 16, 80)
        runs: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
            ("kill -9 and restart", kill_9),
            ("link outage 3 s", link_outage),
            ("overload 64 streams", lambda: overload_run(frames, args.overload_seconds)),
            ("fuzz", lambda: fuzz_run(args.fuzz_cases)),
            ("security", lambda: security_cost(frames, args.rounds, args.seconds)),
            ("redaction", redaction_cost),
        )
        with Steps([name for name, _ in runs]) as steps:
            for name, run in runs:
                steps.start(name)
                results[name] = run()
    sec = results["security"]
    fz = results["fuzz"]
    goals = {
        "frames lost, every fault": (sum(results[k]["frames_lost"] for k in list(results)[:3]), "0"),
        "fuzz: undocumented statuses": (sum(v for k, v in fz["statuses"].items() if k not in DOCUMENTED), "0"),
        "fuzz: crashes": (fz["crashes"], "0"),
        "fuzz: server RSS growth MB": (fz["rss_growth_mb"], "< 200"),
        "TLS c1 p50 / plaintext": (round(sec["tls"]["c1_p50_ms"] / sec["plaintext"]["c1_p50_ms"], 3), "<= 1.10"),
        "TLS c16 fps / plaintext": (round(sec["tls"]["c16_fps"] / sec["plaintext"]["c16_fps"], 3), ">= 0.90"),
        "TLS+token c1 p50 / TLS": (round(sec["tls+token"]["c1_p50_ms"] / sec["tls"]["c1_p50_ms"], 3), "<= 1.05"),
        "redact ms per 640x480 frame with faces, one thread (median)": (results["redaction"]["median_ms"], "<= 15"),
    }
    results["ratios"] = {name: (value, goal, judge(value, goal)) for name, (value, goal) in goals.items()}
    results["settings"] = settings_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwrote {args.out / 'faults.json'}")
    return 0


def markdown(r: dict[str, Any]) -> str:
    rows = ["| fault | sent | answered | lost | remote again after recovery |", "|---|---|---|---|---|"]
    for name in ("kill -9 and restart", "link outage 3 s"):
        f = r[name]
        back = f.get("remote_again_s")
        rows.append(f"| {name} | {f['frames_sent']} | {f['frames_answered']} | {f['frames_lost']} | "
                    f"{'-' if back is None else f'{back} s'} |")  # fmt: skip
    raw, sdk = r["overload 64 streams"]["raw_streams"], r["overload 64 streams"]["sdk_client"]
    rows.append(f"| overload: 64 raw streams | {raw['frames_sent']} | {raw['answered_by_the_server']} by the server, "
                f"{raw['refused']} refused | {raw['frames_lost']} | - |")  # fmt: skip
    rows.append(f"| overload: an SDK client beside them | {sdk['frames_sent']} | {sdk['answered_by_the_server']} by "
                f"the server, {sdk['answered_by_the_device_after_a_refusal']} by the device after a refusal "
                f"| {sdk['frames_lost']} | - |")  # fmt: skip
    fz = r["fuzz"]
    rows += [
        "",
        f"fuzz: {fz['cases']} cases in {fz['seconds']} s, statuses {fz['statuses']}, crashes {fz['crashes']}, "
        f"RSS growth {fz['rss_growth_mb']} MB",
        "",
        "| security | c1 p50 ms | c16 frames/s |",
        "|---|---|---|",
    ]
    for name in ("plaintext", "tls", "tls+token"):
        rows.append(f"| {name} | {r['security'][name]['c1_p50_ms']} | {r['security'][name]['c16_fps']} |")
    rows += ["", f"the token check alone: {r['security']['token_check_us']} µs per call (10 known tokens)"]
    rows += [f"redaction with verification, one thread, 640x480 with faces: median {r['redaction']['median_ms']} ms, "
             f"p95 {r['redaction']['p95_ms']} ms"]  # fmt: skip
    rows += ["", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    rows += [f"| {name} | {v} | {g} | {j} |" for name, (v, g, j) in r["ratios"].items()]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
