"""A circuit breaker for the remote path: stop paying timeouts to a server that is down."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after `failures_to_open` consecutive failures; after a backoff one probe may pass.

    A failed probe doubles the backoff (up to `max_backoff_s`); a success closes it. The cap is
    short on purpose: the client probes a recovering server in the background (the app does not
    wait for it), so probing is cheap and the app is back on the server within ~2 s of an outage's
    end. Raise `max_backoff_s` for servers that stay down for long.

    Each wait is the backoff times a random factor in [1 - jitter, 1 + jitter]: after a server
    restart, a fleet of phones whose breakers opened together must not come back in one burst.
    """

    def __init__(
        self,
        failures_to_open: int = 2,
        base_backoff_s: float = 0.25,
        max_backoff_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.backoff_s = base_backoff_s
        self.opened_at = 0.0
        self.wait_s = base_backoff_s  # this opening's wait: the backoff, jittered

    def allows(self) -> bool:
        """Whether a request may go out now (moving to half-open when the wait is over)."""
        if self.state == BreakerState.OPEN and self.clock() - self.opened_at >= self.wait_s:
            self.state = BreakerState.HALF_OPEN
        return self.state != BreakerState.OPEN

    def success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.backoff_s = self.base_backoff_s

    def failure(self) -> None:
        self.failures += 1
        if self.state == BreakerState.HALF_OPEN:
            self.backoff_s = min(self.backoff_s * 2, self.max_backoff_s)
            self._open()
        elif self.failures >= self.failures_to_open:
            self._open()

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
        self.wait_s = self.backoff_s * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
