"""Joules per frame: the radio as a state machine with a tail, and the device's compute as power x time.

A radio is not free. After a transfer an LTE modem stays in a high-power state for ~11.6 s (the tail)
before it goes idle, and waking it from idle costs a promotion. So what a frame's upload costs
depends on when the last one was: inside the tail, only the time since it; from idle, a promotion
and a whole tail. The parameters are Huang et al., "A Close Examination of Performance and Power
Characteristics of 4G LTE Networks", MobiSys'12, Tables 3 and 4 (the LTE ones are also the defaults
of AT&T's ARO profiler, from the same lab). A transfer's power is `alpha_up * up_Mbps + alpha_down *
down_Mbps + beta` while it lasts, so its energy is `alpha_up * up_Mbit + alpha_down * down_Mbit +
beta * seconds`.

Each transfer is charged what it adds (`Radio.transfer`): its promotion (from idle), its bytes, its
connected time not already covered by another transfer, and the tail it extends. Inside an earlier
tail that is the tail energy of the gap since the last transfer ended: the rest of that tail was
charged already, and the new tail replaces it. The charges of a run add up to the radio's energy
above idle for the whole schedule, exactly.

Compute is busy power x busy time on the device (`ComputeProfile`); the time is the emulated
device's, so `device_slowdown` counts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

MBIT = 1e6 / 8  # bytes


@dataclass(frozen=True)
class RadioProfile:
    """A radio's power model: promotion, transfer (per Mbit/s up and down, plus a base), tail stages."""

    name: str
    promotion_s: float
    promotion_mw: float
    tail: tuple[tuple[float, float], ...]  # (seconds, mW) stages, in order: 3G drops from DCH to FACH
    alpha_up: float  # mW per Mbit/s of uplink throughput
    alpha_down: float  # mW per Mbit/s of downlink throughput
    beta_mw: float  # while connected and transferring

    @property
    def tail_s(self) -> float:
        return sum(seconds for seconds, _ in self.tail)

    def tail_mj(self, seconds: float) -> float:
        """Energy of the first `seconds` of the tail (mJ)."""
        energy, left = 0.0, max(0.0, seconds)
        for length, power in self.tail:
            used = min(left, length)
            energy += used * power
            left -= used
        return energy

    def transfer_mj(self, seconds: float, up_bytes: int, down_bytes: int) -> float:
        """A transfer of these bytes lasting `seconds`, connected all along (Huang et al., Table 4)."""
        return self.alpha_up * up_bytes / MBIT + self.alpha_down * down_bytes / MBIT + self.beta_mw * seconds


# Huang et al., MobiSys'12: Table 3 (promotion, tail) and Table 4 (alpha_u, alpha_d, beta).
LTE = RadioProfile("lte", 0.2601, 1210.7, ((11.576, 1060.0),), 438.39, 51.97, 1288.04)
# 3G (UMTS/HSPA): the DCH tail, then the FACH tail.
THREE_G = RadioProfile("3g", 0.5821, 659.4, ((8.0882, 803.9), (0.8242, 601.3)), 868.98, 122.12, 817.88)
WIFI = RadioProfile("wifi", 0.0791, 124.4, ((0.2381, 119.3),), 283.17, 137.01, 132.86)
RADIOS = {p.name: p for p in (LTE, THREE_G, WIFI)}


@dataclass(frozen=True)
class ComputeProfile:
    """The device's power while it computes (mW), above idle."""

    name: str
    busy_mw: float


# One big core busy: AnandTech, "HiSilicon Kirin 960 performance and power", 2017: system active power
# with one Cortex-A73 core at 2.36 GHz loaded, 1812 mW (Snapdragon 821: 1752 mW).
PHONE_CPU = ComputeProfile("cpu", 1812.0)
# An NPU-class accelerator: Google's Coral Edge TPU, 4 TOPS at 2 W (coral.ai, Edge TPU FAQ).
NPU = ComputeProfile("npu", 2000.0)
COMPUTE = {p.name: p for p in (PHONE_CPU, NPU)}


@dataclass(frozen=True)
class RadioCost:
    """What one transfer added to the radio's energy (mJ)."""

    promotion_mj: float = 0.0
    transfer_mj: float = 0.0
    tail_mj: float = 0.0

    @property
    def total_mj(self) -> float:
        return self.promotion_mj + self.transfer_mj + self.tail_mj


class Radio:
    """The radio's state over a run: when its last transfer ended. Thread-safe.

    Example (LTE, a 24 KB frame up in 0.3 s from idle, then another 1 s after the first ended):
        >>> radio = Radio(LTE)
        >>> round(radio.transfer(0.0, 0.3, 24_000, 2_000).total_mj)      # promotion, transfer, whole tail
        13057
        >>> round(radio.transfer(1.3, 1.6, 24_000, 2_000).total_mj)      # inside the tail: the 1 s gap
        1531
    """

    def __init__(self, profile: RadioProfile) -> None:
        self.profile = profile
        self._connected_until: float | None = None  # end of the latest transfer (seconds, caller's clock)
        self._lock = threading.Lock()

    def transfer(self, start_s: float, end_s: float, up_bytes: int, down_bytes: int) -> RadioCost:
        """Charge a transfer that ran from `start_s` to `end_s` (the caller's clock, seconds)."""
        with self._lock:
            cost = charge(self.profile, self._connected_until, start_s, end_s, up_bytes, down_bytes)
            end_s = max(end_s, start_s)
            if self._connected_until is None or end_s > self._connected_until:
                self._connected_until = end_s
            return cost

    def quiet_s(self, now_s: float) -> float | None:
        """Seconds since the last transfer ended (None: nothing sent yet, the radio is idle)."""
        with self._lock:
            return None if self._connected_until is None else max(0.0, now_s - self._connected_until)


def charge(
    profile: RadioProfile, last_end_s: float | None, start_s: float, end_s: float, up_bytes: int, down_bytes: int
) -> RadioCost:
    """What a transfer from `start_s` to `end_s` adds to a radio whose last transfer ended at `last_end_s`
    (None: none yet, the radio is idle). The pure form of `Radio.transfer`, for plans and hindsight.

    Example (LTE: 24 KB, 0.3 s, 1 s after the last transfer ended: the 1 s of tail it cut short, its bytes
    and its time; no promotion):
        >>> round(charge(LTE, 0.3, 1.3, 1.6, 24_000, 2_000).total_mj)
        1531
    """
    p = profile
    end_s = max(end_s, start_s)
    last = last_end_s
    begins = start_s if last is None else max(start_s, last)  # connected time before it is covered
    gap = p.tail_s if last is None else min(max(0.0, begins - last), p.tail_s)
    idle = last is None or start_s - last >= p.tail_s
    bytes_mj = p.transfer_mj(0.0, up_bytes, down_bytes)
    if last is not None and end_s <= last:  # within a transfer already charged: its bytes only
        return RadioCost(transfer_mj=bytes_mj)
    return RadioCost(
        promotion_mj=p.promotion_s * p.promotion_mw if idle else 0.0,
        transfer_mj=bytes_mj + p.beta_mw * (end_s - begins),
        tail_mj=p.tail_mj(gap),
    )


class EnergyMeter:
    """Charges each frame its energy: the radio for what it sent, the compute for the device's time on it."""

    def __init__(self, radio: RadioProfile = LTE, compute: ComputeProfile = PHONE_CPU) -> None:
        self.radio = Radio(radio)
        self.compute = compute

    @classmethod
    def named(cls, radio: str, compute: str) -> EnergyMeter:
        """By profile names; ValueError for an unknown one."""
        if radio not in RADIOS:
            raise ValueError(f"radio must be one of {', '.join(RADIOS)}, not {radio!r}")
        if compute not in COMPUTE:
            raise ValueError(f"compute must be one of {', '.join(COMPUTE)}, not {compute!r}")
        return cls(RADIOS[radio], COMPUTE[compute])

    def compute_mj(self, device_ms: float) -> float:
        return self.compute.busy_mw * max(0.0, device_ms) / 1000.0

    def charge(self, device_ms: float, transfer: tuple[float, float, int, int] | None) -> tuple[float, float]:
        """(radio mJ, compute mJ) of a frame: `transfer` is (start s, end s, bytes up, bytes down), or None
        when nothing was sent."""
        radio = self.radio.transfer(*transfer).total_mj if transfer is not None else 0.0
        return radio, self.compute_mj(device_ms)
