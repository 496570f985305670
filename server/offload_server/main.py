"""`offload-server`: serve the model repository over gRPC and HTTP until SIGTERM, then drain.

`offload-server quantize ...` runs the quantization toolchain instead (see offload_server.quantize).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from offload_core.engine.repository import ModelFileError
from offload_server.config import Settings
from offload_server.server import OffloadServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-server", description="Serve models to offload clients. Flags override OFFLOAD_* variables."
    )
    parser.add_argument("--host", help="address to bind (OFFLOAD_HOST, default 127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port, 0 for any free one (default 50051)")
    parser.add_argument("--http-port", type=int, help="HTTP port, 0 for any free one (default 8000)")
    parser.add_argument("--models-dir", type=Path, help="the model repository (default: ./models of the checkout)")
    parser.add_argument("--model", dest="models", action="append", help="serve only this model (repeatable)")
    parser.add_argument("--providers", nargs="+", help="onnxruntime execution providers, or 'auto'")
    parser.add_argument("--intra-op-threads", type=int, help="threads per session, 0 = all cores")
    parser.add_argument("--max-queue", type=int, help="requests admitted per model before RESOURCE_EXHAUSTED (32)")
    parser.add_argument(
        "--batching", action=argparse.BooleanOptionalAction, help="dynamic batching where a model can batch (on)"
    )
    parser.add_argument("--log-level", help="debug, info, warning")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate: TLS on both ports (OFFLOAD_TLS_CERT)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert (OFFLOAD_TLS_KEY)")
    parser.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mTLS)")
    parser.add_argument(
        "--auth-tokens-file", type=Path, help="bearer tokens, one per line or its sha256 (OFFLOAD_AUTH_TOKENS_FILE)"
    )
    return parser


def parse_settings(argv: list[str] | None = None) -> Settings:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return Settings(**overrides)


async def serve(settings: Settings) -> None:
    server = OffloadServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.stop(grace_s=0)  # what did start (the gRPC port) closes cleanly before the one-line error
        raise
    # Parsable by scripts that started us with port 0.
    print(f"offload-server ready grpc={server.grpc_target} http={server.http_url}", flush=True)
    await stop.wait()
    logging.getLogger("offload_server").info("draining for up to %.0f s", settings.drain_seconds)
    await server.stop()


def run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run `main` on uvloop when asked and installed, else on asyncio's own loop."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger("offload_server").info("uvloop is not installed: running on asyncio's loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["quantize"]:
        from offload_server.quantize.cli import main as quantize  # heavy imports only when asked

        quantize(argv[1:])
        return
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(serve(settings), settings.event_loop)
    except (OSError, RuntimeError, ValueError, KeyError, ModelFileError) as exc:
        # One line that names what to fix, not a traceback: a missing or unreadable model repository,
        # a bad model.yaml, a port already taken.
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        sys.exit(f"offload-server: cannot start: {message} (models: {settings.models_dir}, set by --models-dir or "
                 f"OFFLOAD_MODELS_DIR; ports: gRPC {settings.grpc_port}, HTTP {settings.http_port})")  # fmt: skip


if __name__ == "__main__":
    main()
