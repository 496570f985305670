"""The `offload` command: run a client over a video, pull device models, emulate a link.

`offload run` and `offload sample-video` need the `cli` extra (`pip install 'offload-client[cli]'`);
`offload models pull` and `offload linkem` run on the SDK alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from types import ModuleType

from offload_client.continuous import MODES
from offload_client.energy import COMPUTE, RADIOS
from offload_client.model_sync import ModelSyncError, pull_model
from offload_client.policy import POLICIES
from offload_client.privacy import Privacy
from offload_client.security import Security
from offload_core.engine.repository import default_models_dir
from offload_tools import linkem
from offload_tools.sample import SAMPLE_FRAMES, SAMPLE_SEED, STYLES


def _runner(command: str) -> ModuleType:
    """The rich-backed runner of `offload run`, or a line saying which extra the command needs."""
    try:
        from offload_tools import runner
    except ImportError as exc:
        raise SystemExit(
            f"`offload {command}` needs the cli extra ({exc.name} is missing): pip install 'offload-client[cli]'"
        ) from None
    return runner


def cmd_run(args: argparse.Namespace) -> int:
    # A live source has no end: SIGINT (Ctrl-C) and SIGTERM (docker stop, a service manager) end the run with
    # its summary. Set here, not inherited: a run started in the background by a script inherits SIGINT
    # ignored, and then nothing but SIGKILL stopped it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return int(_runner("run").cmd_run(args))


def cmd_sample(args: argparse.Namespace) -> int:
    return int(_runner("sample-video").cmd_sample(args))


def cmd_replay(args: argparse.Namespace) -> int:
    return int(_runner("replay").cmd_replay(args))


def cmd_report(args: argparse.Namespace) -> int:
    return int(_runner("report").cmd_report(args))


def cmd_pull(args: argparse.Namespace) -> int:
    """Fetch a model's device files ahead of time, for apps that must start offline."""
    models_dir: Path = args.models_dir or default_models_dir()
    shown: dict[str, int] = {}

    def progress(name: str, received: int, total: int) -> None:
        percent = 100 * received // total if total else 0
        if shown.get(name) != percent // 10:  # a line per tenth: readable in a log, too
            shown[name] = percent // 10
            print(f"  {name}: {received / 1e6:.1f} of {total / 1e6:.1f} MB", flush=True)

    try:
        security = Security.of(args.url.startswith("https://"), args.tls_ca, token=args.token)
        paths = pull_model(
            args.url, args.model, models_dir, on_progress=progress, timeout_s=args.timeout, security=security
        )
    except ModelSyncError as exc:
        print(f"offload models pull: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: {len(paths)} device file(s) verified in {models_dir}")
    return 0


def cmd_linkem(args: argparse.Namespace) -> int:
    config = linkem.config_from_args(
        args.uplink, args.downlink, args.delay_ms, args.queue_packets, args.outage, args.outage_mode, args.start_at
    )
    link = linkem.LinkEmulator(config, linkem.parse_address(args.listen), linkem.parse_address(args.upstream))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(linkem.run_until_cancelled(link))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offload", description="Run models on the device or offload them, per frame.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a client over a video and report latency, split and accuracy")
    run.add_argument(
        "source", nargs="?", metavar="SOURCE",
        help="a video file, a camera number (0), a stream URL (rtsp://, http://...), or a folder or glob of images",
    )  # fmt: skip
    run.add_argument("--sample", action="store_true", help="generate and use the sample video (with ground truth)")
    run.add_argument("--ground-truth", type=Path, help="ground-truth JSON for accuracy (automatic with --sample)")
    run.add_argument(
        "--sample-style", choices=STYLES, default="street", help="the --sample video's look (see sample-video)"
    )
    run.add_argument("--server", default="localhost:50051", help="gRPC address of offload-server")
    run.add_argument("--model", default="text-spotter")
    run.add_argument("--policy", default="adaptive", choices=sorted(POLICIES))
    run.add_argument("--privacy", default=Privacy.ALLOW.value, choices=[p.value for p in Privacy])
    run.add_argument(
        "--deadline-ms", type=float, default=1000.0, help="remote answers later than this fall back to local"
    )
    run.add_argument("--frames", type=int, help="stop after N frames")
    run.add_argument(
        "--device-slowdown", type=float, default=1.0,
        help="emulate a device X times slower than this one: each device step (inference, redaction, JPEG) "
        "costs X times its CPU time, in real work",
    )  # fmt: skip
    run.add_argument(
        "--models-dir", type=Path, help="local model repository (default: OFFLOAD_MODELS_DIR or the cache)"
    )
    run.add_argument(
        "--sync-models-from", metavar="URL", help="the server's HTTP URL: fetch (and cache) its device model first"
    )
    run.add_argument("--tls", action="store_true", help="TLS to the server (gRPC and model downloads), system CAs")
    run.add_argument("--tls-ca", type=Path, metavar="FILE", help="TLS, trusting this CA (PEM) for the server")
    run.add_argument("--token", help="bearer token for a server with --auth-tokens-file (default: $OFFLOAD_TOKEN)")
    run.add_argument(
        "--mode", choices=MODES, default="per-frame",
        help="per-frame: every frame waits for an inference; continuous: every frame answered at once by "
        "tracking, inference on key frames in the background",
    )  # fmt: skip
    run.add_argument(
        "--whole-frames", action="store_true",
        help="continuous mode: send every key frame whole (default: only its new area and the words to read "
        "again, where the server takes regions)",
    )  # fmt: skip
    run.add_argument(
        "--radio", choices=sorted(RADIOS), default="lte",
        help="the energy model's radio for mJ/frame (Huang et al., MobiSys'12): lte, 3g or wifi",
    )  # fmt: skip
    run.add_argument(
        "--compute", choices=sorted(COMPUTE), default="cpu",
        help="the energy model's device compute: cpu (a phone's big core, 1.8 W) or npu (2 W)",
    )  # fmt: skip
    run.add_argument(
        "--fps", type=float, default=0.0,
        help="pace the frames as a camera would (default: back to back; with --mode continuous, the video's "
        "own rate, and latency counted from each frame's arrival)",
    )  # fmt: skip
    run.add_argument("--dashboard", action="store_true", help="serve a live dashboard on localhost while it runs")
    run.add_argument("--dashboard-port", type=int, default=8765)
    run.add_argument(
        "--uplink-trace", metavar="TRACE", help="the linkem uplink trace (file or profile): the dashboard draws it"
    )
    run.add_argument("--dashboard-linger", type=float, default=0.0, metavar="S", help="keep it up S s after the run")
    run.add_argument(
        "--save-video", type=Path, metavar="FILE",
        help="write every frame with its answer drawn (H.264 .mp4 where OpenCV writes it, else VP8 .webm)",
    )  # fmt: skip
    run.add_argument("--out", type=Path, default=Path("out"), help="where telemetry, summary and plot go")
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="draw an earlier run's answers on its video (--save-video)")
    replay.add_argument("telemetry", type=Path, help="the run's telemetry.jsonl")
    replay.add_argument("source", metavar="SOURCE", help="the video (or folder of images) the run read")
    replay.add_argument("--save-video", type=Path, required=True, metavar="FILE", help="the annotated video")
    replay.set_defaults(func=cmd_replay)

    report = sub.add_parser("report", help="one self-contained HTML page of a finished run, for sharing")
    report.add_argument("run", type=Path, help="the --out folder of an `offload run`")
    report.add_argument("--out", type=Path, help="the HTML file (default: RUN/report.html)")
    report.set_defaults(func=cmd_report)

    sample = sub.add_parser("sample-video", help="render a sample video with known words, and its ground truth")
    sample.add_argument(
        "--style",
        choices=STYLES,
        default="street",
        help="street: a synthetic street, words 10-40 px; real: photographs, TrueType words down to 8 px, "
        "JPEG artefacts (photos from $OFFLOAD_PHOTOS: a folder or a wheel of JPEG/PNG files)",
    )
    sample.add_argument("--seed", type=int, default=SAMPLE_SEED)
    sample.add_argument("--frames", type=int, default=SAMPLE_FRAMES)
    sample.add_argument("--out", type=Path, default=Path("out/sample"))
    sample.set_defaults(func=cmd_sample)

    models = sub.add_parser("models", help="manage the device models").add_subparsers(dest="action", required=True)
    pull = models.add_parser("pull", help="fetch a model's device files from a server, sha256-verified")
    pull.add_argument("model", nargs="?", default="text-spotter")
    pull.add_argument("--from", dest="url", required=True, metavar="URL", help="the server's HTTP URL")
    pull.add_argument("--models-dir", type=Path, help="where to put them (default: OFFLOAD_MODELS_DIR or the cache)")
    pull.add_argument("--timeout", type=float, default=60.0, help="seconds per request before giving up")
    pull.add_argument("--tls-ca", type=Path, metavar="FILE", help="trust this CA (PEM) for an https:// server")
    pull.add_argument("--token", help="bearer token, for a server that wants one (default: $OFFLOAD_TOKEN)")
    pull.set_defaults(func=cmd_pull)

    link = sub.add_parser("linkem", help="a TCP proxy that emulates a cellular link from Mahimahi traces")
    link.add_argument("--listen", default="127.0.0.1:50052", help="HOST:PORT the client connects to")
    link.add_argument("--upstream", default="127.0.0.1:50051", help="HOST:PORT of the server")
    profiles = ", ".join(sorted(linkem.PROFILES))
    link.add_argument("--uplink", default="lte", help=f"Mahimahi trace file or profile ({profiles})")
    link.add_argument("--downlink", default="lte", help="Mahimahi trace file or profile")
    link.add_argument("--delay-ms", type=float, help="one-way propagation delay (default: the profile's, or 0)")
    link.add_argument("--queue-packets", type=int, default=100, help="bottleneck queue, in 1500-byte packets")
    link.add_argument("--outage", action="append", default=[], help="START+LENGTH seconds of darkness (repeatable)")
    link.add_argument("--outage-mode", choices=["stall", "reset"], default="stall")
    link.add_argument(
        "--start-at", type=float, default=0.0, metavar="S", help="begin S seconds into the traces and outage schedule"
    )
    link.set_defaults(func=cmd_linkem)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
