"""What the sync and async clients share: the constructor, the device engine, the router and the settings."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from offload_client.continuous import MODES, Continuous, in_background
from offload_client.energy import EnergyMeter
from offload_client.local import LocalEngine
from offload_client.policy import Estimates, Policy, make_policy
from offload_client.privacy import Privacy
from offload_client.redaction import Redactor
from offload_client.region_plan import text_finder
from offload_client.router import FrameRouter
from offload_client.security import Security
from offload_client.steps import DeviceDone, DeviceFailed, DeviceOutcome

T = TypeVar("T")


class ClientBase(ABC, Generic[T]):
    """Runs each frame on the device or on the server, whichever the policy picks.

    Every frame gets a result: when the server is down, refuses or is later than
    `deadline_ms`, the device model answers instead.

    Args:
        target: the server's gRPC address, "host:port". Ignored when `transport` is given.
        model: the model name, as in the server's and the local model repository.
        policy: "always-local", "always-remote", "adaptive", or a `Policy` instance.
        privacy: "allow", "redact" or "local-only"; settable at any time. "local-only" needs a device model.
        deadline_ms: the most a remote answer may take before the local model is used.
        models_dir: the local model repository (default: `$OFFLOAD_MODELS_DIR`, else
            `~/.cache/offload/models`; in a source checkout, its `models/`).
        local_threads: intra-op threads for the device model (1 is a phone's budget).
        jpeg_quality: quality of the JPEG sent upstream.
        device_slowdown: makes the device's work this many times slower, to emulate a phone (benchmarks).
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
        mode: "per-frame" (the default): each `infer` waits for an inference on its frame.
            "continuous": each `infer` answers at once (a few ms) by tracking the last answer onto the
            frame, while inference runs in the background on key frames the client picks (new content,
            a cut, a fading track, an old answer). Results say `source` ("tracked", "fresh-remote",
            "fresh-local", "none"), `age_ms` and a `track_id` per box. For camera-rate apps over slow links.
        regions: continuous mode: a key frame sends only what its answer needs (the new area, and the
            tracked words worth reading again), where the server takes regions (offload-server 0.3 on);
            False sends every key frame whole.
        radio: the energy model's radio for `energy_mj`: "lte" (default), "3g" or "wifi" (Huang et al.,
            MobiSys'12). compute: the device's compute for it: "cpu" (a phone's big core) or "npu".
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
        transport: T | None = None,
        mode: str = "per-frame",
        regions: bool = True,
        radio: str = "lte",
        compute: str = "cpu",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.security = Security.of(tls, ca_file, client_cert, client_key, token)
        self.local = LocalEngine(
            model, models_dir, local_threads, device_slowdown, sync_from=sync_models_from, providers=device_providers,
            security=self.security,
        )  # fmt: skip
        privacy_mode = Privacy.parse(privacy)
        self._require_device_for(privacy_mode)
        self._energy = EnergyMeter.named(radio, compute)
        self._router = FrameRouter(
            model, make_policy(policy), privacy_mode, deadline_ms, jpeg_quality, device=self.local.device,
            energy=self._energy,
        )  # fmt: skip
        self._arm(privacy_mode)
        if self.local.provider_note:
            self._router.note(self.local.provider_note)
        if not self.local.missing:
            # Load and warm the device model now: it is the fallback, so it must be ready before the first frame.
            self.local.load_all()
        self._told_missing: str | None = None
        self._sync_device()
        # The device runs one model at a time, as a phone does: every local run goes through this thread,
        # so a run that lost a race and is still finishing delays the next one instead of sharing its core.
        # In continuous mode the device model and the key frames are background work (`in_background`).
        background = in_background if mode == "continuous" else None
        self._device = ThreadPoolExecutor(1, thread_name_prefix="offload-device", initializer=background)
        self._transport: T = transport if transport is not None else self._connect(target)
        self._continuous = (
            Continuous(model, self.local.device, regions=regions, energy=self._energy) if mode == "continuous" else None
        )

    @property
    def mode(self) -> str:
        """ "per-frame" or "continuous" (see the class docstring)."""
        return "per-frame" if self._continuous is None else "continuous"

    @abstractmethod
    def _connect(self, target: str) -> T:
        """The default transport to `target`."""

    def _sync_device(self) -> None:
        """Tell the router whether the device model is there (a model pulled after start-up arrives while
        frames already flow) and, once it is, what its variants measured."""
        missing = self.local.missing
        if missing == self._told_missing:
            return
        self._told_missing = missing
        if missing:
            self._router.device_ready(missing)
        else:
            self._router.device_ready("", self.local.options(), self.local.remote_jpeg_accuracy())
            self._router.finder_ready(text_finder(self.local.task))

    def _run_device(
        self, frame: np.ndarray, variant: str | None, stop: threading.Event | None = None
    ) -> Future[DeviceOutcome]:
        """Start the device model on `frame` (on the one device thread); setting `stop` cuts it short.

        A model that raises ends as `DeviceFailed`, so the frame can still be answered by the server.
        """
        ran = variant or self.local.variant

        def run() -> DeviceOutcome:
            try:
                prediction, stages = self.local.run(frame, stop, variant)
            except Exception as exc:  # a bug in the task's code must not lose the app's frame
                return DeviceFailed(f"{type(exc).__name__}: {exc}")
            return DeviceDone(prediction, stages, ran)

        return self._device.submit(run)

    @property
    def privacy(self) -> Privacy:
        """The privacy mode; setting it takes effect from the next frame.

        In `local-only` no frame byte leaves the device, probes included; in `redact` faces are
        painted over on the device and a frame leaves only once verified clean (nothing leaves if
        the face detector cannot run).
        """
        return self._router.privacy

    @privacy.setter
    def privacy(self, mode: str | Privacy) -> None:
        parsed = Privacy.parse(mode)
        self._require_device_for(parsed)
        self._arm(parsed)
        self._router.use_privacy(parsed)

    def _arm(self, mode: Privacy) -> None:
        """Load the face detector the first time `redact` is asked for; if it cannot run, redact fails closed."""
        if mode != Privacy.REDACT or self._router.has_redaction:
            return
        try:
            self._router.redaction_ready(Redactor.load(self.local.models_dir))
        except Exception as exc:
            self._router.redaction_ready(None, Redactor.why_not(self.local.models_dir, exc))

    def _require_device_for(self, mode: Privacy) -> None:
        if mode == Privacy.LOCAL_ONLY and self.local.missing:
            raise ValueError(f"privacy 'local-only' runs every frame on the device, but {self.local.missing}")

    def wait_for_device_model(self, timeout_s: float | None = None) -> bool:
        """Block until the device model can answer; False if it cannot (timeout, or a pull that failed).

        Only needed on a first start with an empty model cache and `sync_models_from`: frames
        go to the server meanwhile, so most apps never wait.

        Example:
            >>> oc = OffloadClient("gpu-box:50051", sync_models_from="http://gpu-box:8000")  # doctest: +SKIP
            >>> oc.wait_for_device_model(timeout_s=60)                                        # doctest: +SKIP
            True
        """
        if self.local.missing:
            self.local.synced.wait(timeout_s)
        return not self.local.missing

    @property
    def policy(self) -> Policy:
        return self._router.policy

    @property
    def deadline_ms(self) -> float:
        return self._router.deadline_ms

    @property
    def estimates(self) -> Estimates:
        """What the client has learned about both paths (latency, link RTT and throughput)."""
        return self._router.estimates
