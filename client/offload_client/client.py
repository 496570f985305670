"""`OffloadClient`: run each frame on the device or on the server, whichever the policy picks."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from offload_client._client_base import ClientBase
from offload_client.policy import Policy
from offload_client.privacy import Privacy
from offload_client.router import Pending
from offload_client.security import Security
from offload_client.transport import Exchange, GrpcTransport, Transport, TransportError, late
from offload_client.types import FrameResult


class OffloadClient(ClientBase):
    """Decides, frame by frame, whether to run the model here or on the server.

    Every frame gets a result: when the server is down, refuses or is later
    than `deadline_ms`, the device model answers instead.

    Example:
        >>> with OffloadClient("localhost:50051", model="text-spotter", policy="adaptive") as oc:  # doctest: +SKIP
        ...     result = oc.infer(frame)               # a BGR numpy image
        ...     print(result.where, result.reason, result.latency_ms, result.words)
        ...     oc.privacy = "local-only"              # from the next frame on, nothing is sent

    Args:
        target: the server's gRPC address, "host:port". Ignored when `transport` is given.
        model: the model name, as in the server's and the local model repository.
        policy: "always-local", "always-remote", "adaptive", or a `Policy` instance.
        privacy: "allow" or "local-only"; settable at any time. "local-only" needs a device model.
        deadline_ms: the most a remote answer may take before the local model is used.
        models_dir: the local model repository (default: `$OFFLOAD_MODELS_DIR`, else
            `~/.cache/offload/models`; in a source checkout, its `models/`).
        local_threads: intra-op threads for the device model (1 is a phone's budget).
        jpeg_quality: quality of the JPEG sent upstream.
        device_slowdown: makes each device run this many times slower, to emulate a phone (benchmarks).
        sync_models_from: the server's HTTP URL ("http://gpu-box:8000"). With an empty `models_dir`
            the device model is pulled from it once in the background (sha256-verified); until it is
            there, every frame goes to the server and its `reason` says so. With a device model, it
            is kept current in the background (cached for offline use) while the current files serve.
        device_providers: onnxruntime execution providers for the device model, in order of
            preference (e.g. ["CoreMLExecutionProvider"], ["NnapiExecutionProvider"],
            ["XnnpackExecutionProvider"]); those this onnxruntime lacks are skipped, with a note in
            the first result's `reason`, and the CPU always closes the list.
        tls: use TLS to the server (gRPC and model downloads); `ca_file` trusts a private CA, and
            `client_cert`/`client_key` (PEM) answer a server that asks for client certificates (mTLS).
        token: a bearer token for a server started with `--auth-tokens-file` (default: `$OFFLOAD_TOKEN`).
            A client the server refuses (bad token or certificate) answers every frame on the device,
            says why in `reason`, and asks the server again only once a minute.
        transport: a custom remote path (e.g. `InMemoryTransport` in tests).
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        model: str = "text-spotter",
        policy: str | Policy = "adaptive",
        privacy: str | Privacy = Privacy.ALLOW,
        deadline_ms: float = 1000.0,
        models_dir: Path | str | None = None,
        local_threads: int = 1,
        jpeg_quality: int = 90,
        device_slowdown: float = 1.0,
        sync_models_from: str | None = None,
        device_providers: list[str] | None = None,
        tls: bool = False,
        ca_file: Path | str | None = None,
        client_cert: Path | str | None = None,
        client_key: Path | str | None = None,
        token: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(
            model,
            policy,
            privacy,
            deadline_ms,
            models_dir,
            local_threads,
            jpeg_quality,
            device_slowdown,
            sync_models_from,
            device_providers,
            Security.of(tls, ca_file, client_cert, client_key, token),
        )
        self._transport: Transport = transport or GrpcTransport(target, security=self.security)

    def infer(self, frame: np.ndarray) -> FrameResult:
        """Run the model on one BGR uint8 frame (HxWx3) and say where it ran and why."""
        self._device_state()
        router = self._router
        pending = router.begin(frame)
        failure: TransportError | None = None
        if pending.request is not None:
            # A background probe may wait for a reconnecting channel; the app is not waiting on it.
            future = self._transport.submit(pending.request, pending.timeout_s, patient=pending.patient)
            if pending.shadow:
                future.add_done_callback(functools.partial(self._late_answer, pending))
            else:
                try:
                    return router.succeeded(pending, future.result(timeout=pending.hedge_s))
                except TransportError as exc:
                    failure = exc
                except FutureTimeout:
                    if not router.device_missing:
                        return self._race(pending, future, frame)
                    failure = late(pending.hedge_s)
                router.failed(pending, failure)
        if router.device_missing:
            return router.unanswered(pending, failure)
        prediction, stages = self._device.submit(self.local.run, frame, None, pending.decision.device_variant).result()
        return router.finish_local(pending, prediction, stages, self.local.variant, failure)

    def _race(self, pending: Pending, call: Future[Exchange], frame: np.ndarray) -> FrameResult:
        """Past the hedge: the device model runs, and the first of it and the remote answer serves the frame."""
        stop = threading.Event()
        local = self._device.submit(self.local.run, frame, stop, pending.decision.device_variant)
        contenders: list[Future[Any]] = [call, local]
        wait(contenders, return_when=FIRST_COMPLETED)
        if local.done() and not call.done():  # the more accurate answer may still come in time
            wait([call], timeout=self._router.remote_time_left_s(pending))
        error = call.exception() if call.done() else None
        if call.done() and error is None and (not local.done() or pending.decision.prefer_remote):
            stop.set()
            device = local.result() if local.done() else None
            return self._router.succeeded(pending, call.result(), raced=True, device=device)
        failure = self._router.lost_race(pending, error)
        if error is None:  # still running, or answered just as the device finished: its timing still teaches
            call.add_done_callback(functools.partial(self._late_answer, pending))
        prediction, stages = local.result()
        return self._router.finish_local(pending, prediction, stages, self.local.variant, failure)

    def _late_answer(self, pending: Pending, future: Future[Exchange]) -> None:
        """A hedged or shadow call came back: its timing still teaches the estimators."""
        exc = future.exception()
        if exc is None:
            self._router.late(pending, future.result())
        elif isinstance(exc, TransportError):
            self._router.late(pending, exc)

    def close(self) -> None:
        self._transport.close()
        self._device.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> OffloadClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
