"""The policy interface: one pure decision per frame from what the estimators know."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from offload_client.energy import LTE, PHONE_CPU, ComputeProfile, RadioProfile
from offload_client.policy.estimators import Estimates
from offload_core.types import Where

# A probe that only measures the link goes as a thumbnail, half the frame's width and height: at 640x480 a
# third of the bytes (8 of 24 KB at q35) and a quarter of the encoding, timed by the same link.
THUMBNAIL_SCALE = 0.5


@dataclass(frozen=True)
class DeviceOption:
    """One device variant a policy may run, with what `make bench-accuracy` measured of it.

    Example:
        >>> DeviceOption("device-accurate", accuracy=0.853, latency_ms=133.0).name
        'device-accurate'
    """

    name: str
    accuracy: float | None = None  # share of words read on the real-photo sample
    latency_ms: float | None = None  # per frame on one thread, on the benchmark's machine
    # On this device, at load: its time on an empty frame (its fixed part: the detector at its size).
    blank_ms: float | None = None


@dataclass(frozen=True)
class PolicyInput:
    """What a policy may look at for one frame.

    Example:
        >>> from offload_client.policy import Estimates
        >>> PolicyInput(frame_index=0, estimates=Estimates(), deadline_ms=200.0, remote_allowed=True).deadline_ms
        200.0
    """

    frame_index: int
    estimates: Estimates
    deadline_ms: float
    # False when privacy forbids sending or the circuit breaker is open.
    remote_allowed: bool
    remote_blocked_reason: str = ""
    # A shadow probe is still on its way: do not send another.
    probe_in_flight: bool = False
    # Seconds since the remote path last answered (a frame or a probe); failures do not count.
    since_remote_s: float = 0.0
    # The device variants, fastest (the default) first; empty or one: no choice to make.
    device_options: tuple[DeviceOption, ...] = ()
    # The server's word accuracy by the JPEG quality the frame is sent at (empty: not measured).
    remote_jpeg_accuracy: tuple[tuple[int, float], ...] = ()
    # For the energy objective (offload_client/energy.py): the radio and the device's compute profile, the
    # seconds since the radio's last transfer ended (None: nothing sent yet, it is idle), and the app's mean
    # time between frames (None: not known yet).
    radio: RadioProfile = LTE
    compute: ComputeProfile = PHONE_CPU
    radio_quiet_s: float | None = None
    frame_interval_s: float | None = None


@dataclass(frozen=True)
class Decision:
    """A policy's choice for one frame, and why (the reason lands in `FrameResult.reason`).

    Example:
        >>> Decision(Where.LOCAL, "my policy: the device is faster", predicted_local_ms=80.0).where
        <Where.LOCAL: 'local'>
    """

    where: Where
    reason: str
    predicted_local_ms: float | None = None
    predicted_remote_ms: float | None = None
    # The JPEG quality to send at; None means the client's default.
    jpeg_quality: int | None = None
    # With where=LOCAL: also send the frame to the server, only to measure the remote path.
    shadow: bool = False
    # With shadow: send the frame scaled by this much on each side (`THUMBNAIL_SCALE`): it times the link as
    # the frame would, for fewer bytes; its answer teaches the link model only, never the server's or JPEG's.
    probe_scale: float = 1.0
    # A shadow probe or a sent frame that measures the link at a size of its own choosing (while seeding):
    # whether it came in time says nothing of the frames to come, so it does not count towards the late
    # share; a sent one the device beat runs on as a probe.
    seed: bool = False
    # With where=REMOTE: run the device model at once too, not at the hedge; the first answer serves.
    # Deadline insurance when neither path alone is reliably in time: it costs the uplink bytes.
    race: bool = False
    # With where=REMOTE: a remote answer that comes by the deadline serves the frame even when the
    # device's result is already in hand (the remote model is the more accurate).
    prefer_remote: bool = False
    # The device variant to run when the device runs (None: the default one).
    device_variant: str | None = None
    # With where=LOCAL: also encode the frame at this JPEG quality, sending nothing, so that the policy
    # learns what sending it would carry (its bytes and the encoding's time) before it wakes a radio.
    encode_at: int | None = None


class Policy(ABC):
    """Chooses local or remote for each frame. Subclasses stay free of I/O and clocks.

    Example:
        >>> from offload_client.policy import AlwaysLocal, Estimates, PolicyInput
        >>> AlwaysLocal().decide(PolicyInput(0, Estimates(), 100.0, True)).where
        <Where.LOCAL: 'local'>
    """

    name: str = "policy"

    @abstractmethod
    def decide(self, inp: PolicyInput) -> Decision:
        """Where frame `inp.frame_index` should run, and why."""

    def blocked(self, inp: PolicyInput) -> Decision:
        """The decision when the remote path is not allowed: local, saying why."""
        return Decision(
            Where.LOCAL,
            inp.remote_blocked_reason or "remote not allowed",
            inp.estimates.local_ms.value,
            inp.estimates.remote_ms.value,
        )
