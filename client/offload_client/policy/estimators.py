"""Running estimates of each path's cost, updated from every frame's record."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Ewma:
    """Exponentially weighted mean and mean absolute deviation (for a high-quantile bound)."""

    alpha: float = 0.3
    value: float | None = None
    deviation: float = 0.0
    samples: int = 0

    def update(self, x: float) -> None:
        if self.value is None:
            self.value = x
        else:
            self.deviation = (1 - self.alpha) * self.deviation + self.alpha * abs(x - self.value)
            self.value = (1 - self.alpha) * self.value + self.alpha * x
        self.samples += 1

    @property
    def high(self) -> float | None:
        """A pessimistic estimate (mean + 2 deviations), roughly a 95th percentile."""
        return None if self.value is None else self.value + 2 * self.deviation


@dataclass
class Estimates:
    """Per-path latency estimates, in milliseconds."""

    local_ms: Ewma = field(default_factory=Ewma)
    remote_ms: Ewma = field(default_factory=Ewma)
    # Round trip minus what the server reports: the network's share.
    network_ms: Ewma = field(default_factory=Ewma)
    server_ms: Ewma = field(default_factory=Ewma)
