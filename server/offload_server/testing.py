"""Run a real server in a background thread, for tests and scripts (LitServe's helper, in our shape)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

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
