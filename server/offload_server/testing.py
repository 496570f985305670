"""Run a real server in a background thread, for tests and scripts (LitServe's helper, in our shape)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from offload_server.config import Settings
from offload_server.server import OffloadServer


@contextlib.contextmanager
def serve_in_thread(settings: Settings | None = None, timeout_s: float = 120.0) -> Iterator[OffloadServer]:
    """Start `OffloadServer` on its own event loop; yield it once ready; stop it on exit.

    Example:
        >>> with serve_in_thread(Settings(grpc_port=0, http_port=0)) as server:  # doctest: +SKIP
        ...     client = OffloadClient(server.grpc_target)
    """
    settings = settings or Settings(grpc_port=0, http_port=0)
    server = OffloadServer(settings)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    stopping: asyncio.Event | None = None

    async def run() -> None:
        nonlocal stopping
        stopping = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await stopping.wait()
        await server.stop(grace_s=5.0)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), name="offload-server", daemon=True)
    thread.start()
    if not ready.wait(timeout_s):
        raise TimeoutError(f"server did not start within {timeout_s} s")
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield server
    finally:
        assert stopping is not None
        loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=30)
        loop.close()


@contextlib.contextmanager
def child_process(
    cmd: list[str],
    ready: str,
    cpus: set[int] | None = None,
    timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[re.Match[str]]:
    """Run `cmd` (in `cwd`) until its output matches the regex `ready`; yield the match; SIGTERM it on exit.

    `cpus` pins the child to those cores (Linux): a benchmark can then give the "server side" and
    the "device" a core each, as two machines would have. `env` adds to this process's environment.
    """
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}

    def pin() -> None:
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, preexec_fn=pin
    )
    assert proc.stdout is not None
    output = proc.stdout
    # Keeps reading its output once it is ready, so a chatty child never blocks on a full pipe.
    drain = threading.Thread(target=lambda: [None for _ in output], daemon=True)
    try:
        deadline = time.monotonic() + timeout_s
        for line in output:
            if match := re.search(ready, line):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd[0]} not ready after {timeout_s} s")
        else:
            raise RuntimeError(f"{cmd[0]} exited with {proc.wait()} before it was ready")
        drain.start()
        yield match
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain.is_alive():
            drain.join(timeout=5)  # the pipe ends with the child
        output.close()


@contextlib.contextmanager
def server_process(
    args: list[str] | None = None,
    cpus: set[int] | None = None,
    env: dict[str, str] | None = None,
    exe: Path | None = None,
    cwd: Path | None = None,
) -> Iterator[tuple[str, str]]:
    """Run `offload-server` as a child process on free ports; yield (gRPC target, HTTP URL) once ready.

    `env` adds to its environment (settings as `OFFLOAD_*` variables); `exe` is another installation's
    `offload-server`; `cwd` is where it runs (relative paths in `args` start there).
    The server is stopped with SIGTERM (so it drains) when the block ends.
    """
    exe = exe or Path(sys.executable).parent / "offload-server"
    # Without the console script (the package on PYTHONPATH, not installed), run the module.
    launcher = [str(exe)] if exe.exists() else [sys.executable, "-m", "offload_server.main"]
    cmd = [*launcher, "--grpc-port", "0", "--http-port", "0", *(args or [])]
    with child_process(cmd, r"ready grpc=(\S+) http=(\S+)", cpus, env=env, cwd=cwd) as match:
        yield match.group(1), match.group(2)


def unused_port() -> int:
    """A port nothing listens on (for "the server is unreachable" cases)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
