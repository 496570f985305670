"""What the sync and async clients share: the router, the device engine and the settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from offload_client.local import LocalEngine
from offload_client.policy import Estimates, Policy, make_policy
from offload_client.privacy import Privacy
from offload_client.redaction import Redactor
from offload_client.router import FrameRouter
from offload_client.security import Security


class ClientBase:
    def __init__(
        self,
        model: str,
        policy: str | Policy,
        privacy: str | Privacy,
        deadline_ms: float,
        models_dir: Path | str | None,
        local_threads: int,
        jpeg_quality: int,
        device_slowdown: float = 1.0,
        sync_models_from: str | None = None,
        device_providers: list[str] | None = None,
        security: Security | None = None,
    ) -> None:
        self.security = security or Security()
        self.local = LocalEngine(
            model, models_dir, local_threads, device_slowdown, sync_from=sync_models_from, providers=device_providers,
            security=self.security,
        )  # fmt: skip
        self._router = FrameRouter(
            model, make_policy(policy), Privacy.parse(privacy), deadline_ms, jpeg_quality, device=self.local.device
        )
        self._require_device_for(self._router.privacy)
        self._arm(self._router.privacy)
        if self.local.provider_note:
            self._router.notes.append(self.local.provider_note)
        if not self.local.missing:
            # Load and warm the device model now: it is the fallback, so it must be ready before the first frame.
            self.local.load_all()
        self._device_state()
        # The device runs one model at a time, as a phone does: every local run goes through this thread,
        # so a run that lost a race and is still finishing delays the next one instead of sharing its core.
        self._device = ThreadPoolExecutor(1, thread_name_prefix="offload-device")

    def _device_state(self) -> None:
        """Tell the router whether the device model is there and, once it is, what its variants measured
        (a model pulled after start-up arrives while frames already flow)."""
        router = self._router
        router.device_missing = self.local.missing
        if not router.device_missing and not router.device_options:
            router.device_options = self.local.options()
            router.remote_jpeg_accuracy = self.local.remote_jpeg_accuracy()

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
        self._router.privacy = parsed

    def _arm(self, mode: Privacy) -> None:
        """Load the face detector the first time `redact` is asked for; if it cannot run, redact fails closed."""
        if mode != Privacy.REDACT or self._router.redact is not None:
            return
        try:
            self._router.redact = Redactor.load(self.local.models_dir)
        except Exception as exc:
            self._router.redact_missing = Redactor.why_not(self.local.models_dir, exc)

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
