"""The fleet's queueing model: from one phone's run and the server's capacity alone, predict N phones.

Each phone asks for a frame every period from its own random phase, and the server serves one at a time
in `1 / capacity` (its capacity alone): N periodic sources into one deterministic server (the ND/D/1
queue). Its mean wait is found by simulating the queue over many periods and phase draws (`periodic_wait_ms`):
no closed form is simple, and the Poisson (M/D/1) formula, rho / (2 mu (1 - rho)) (`mean_wait_ms`), is
far too pessimistic for periodic phones below saturation (in make bench-fleet it put the crossover at
1.5 phones where 2.25 were measured). Each frame of a one-phone run is shifted by the extra wait at N;
one that then passes its deadline reads no words in time. Where the server's words in time fall to the
device's is the predicted crossover: past it, a fleet is better off reading on its phones.

Example:
    >>> round(mean_wait_ms(arrivals_per_s=1.0, capacity_per_s=2.0), 1)
    250.0
    >>> periodic_wait_ms(1, period_s=1.0, service_s=0.5)   # one phone never waits for itself
    0.0
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence


def mean_wait_ms(arrivals_per_s: float, capacity_per_s: float) -> float:
    """The M/D/1 mean wait in the queue (ms); inf at or past saturation."""
    rho = arrivals_per_s / capacity_per_s
    if rho >= 1.0:
        return math.inf
    return 1000.0 * rho / (2.0 * capacity_per_s * (1.0 - rho))


def periodic_wait_ms(
    phones: float, period_s: float, service_s: float, draws: int = 30, periods: int = 100, seed: int = 0
) -> float:
    """The mean wait in the queue (ms) of `phones` periodic phones (random phases) at a one-at-a-time server;
    a fractional number of phones interpolates between its neighbours. Deterministic for a seed."""
    low = math.floor(phones)
    if phones != low:
        share = phones - low
        return (1 - share) * periodic_wait_ms(low, period_s, service_s, draws, periods, seed) + share * (
            periodic_wait_ms(low + 1, period_s, service_s, draws, periods, seed)
        )
    rng = random.Random(seed)
    waited, served = 0.0, 0
    for _ in range(draws):
        phases = [rng.uniform(0.0, period_s) for _ in range(int(phones))]
        free = 0.0
        for t in sorted(p + k * period_s for p in phases for k in range(periods)):
            start = max(t, free)
            waited, served, free = waited + start - t, served + 1, start + service_s
    return 1000.0 * waited / served if served else 0.0


def words_in_time(
    latencies_ms: Sequence[float], words: Sequence[int], total_words: int, extra_ms: float, deadline_ms: float
) -> float:
    """The share of words read in time by frames that each took `extra_ms` longer than measured."""
    read = sum(w for ms, w in zip(latencies_ms, words, strict=True) if ms + extra_ms <= deadline_ms)
    return read / total_words if total_words else 0.0


def crossover(fleet: Sequence[float], gain: Sequence[float]) -> float | None:
    """The fleet size where `gain` (the server's words in time minus the device's) first turns negative,
    interpolated on log2(N); None when it never does in range. `fleet` is increasing."""
    points = list(zip(fleet, gain, strict=True))
    for (n0, g0), (n1, g1) in itertools.pairwise(points):
        if g0 >= 0 > g1:
            x0, x1 = math.log2(n0), math.log2(n1)
            return 2 ** (x0 + (x1 - x0) * g0 / (g0 - g1))
    return None


def predicted_crossover(
    one_phone_ms: Sequence[float],
    one_phone_words: Sequence[int],
    total_words: int,
    device_words: float,
    rate_per_phone: float,
    capacity_per_s: float,
    deadline_ms: float,
    largest: int,
) -> float | None:
    """Where the queueing model puts the crossover, from one phone's always-remote frames and the
    server's capacity alone (nothing measured at N > 1); None when not within `largest` phones."""
    period, service = 1.0 / rate_per_phone, 1.0 / capacity_per_s
    base = periodic_wait_ms(1, period, service)
    grid = [2 ** (k / 20) for k in range(int(20 * math.log2(largest)) + 1)]
    # Rounded as the measured figures are: 14 of 30 words (0.4667) against a device's 0.467 is a tie, not a
    # loss (unrounded, a one-phone tie read as "the server never pays" and the prediction came out empty).
    gain = [
        round(words_in_time(
            one_phone_ms, one_phone_words, total_words, periodic_wait_ms(n, period, service) - base, deadline_ms
        ), 3) - device_words
        for n in grid
    ]  # fmt: skip
    return crossover(grid, gain)
