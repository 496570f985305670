"""The adaptive policy: pick the path expected to be faster, without flapping, and keep both estimates fresh."""

from __future__ import annotations

from offload_client.policy.base import Decision, Policy, PolicyInput
from offload_client.types import Where


class Adaptive(Policy):
    """Least expected latency within the deadline.

    - Both paths are tried `seed_samples` times at the start to seed the estimates.
    - It switches only when the other path is better by `hysteresis` (a fraction),
      so noise does not make it flap.
    - Every `probe_every` frames it runs the other path once, so an estimate
      that went stale (the link got better, the server got idle) can win again.
    - A path whose pessimistic estimate misses the deadline loses to one that meets it.
    """

    name = "adaptive"

    def __init__(self, hysteresis: float = 0.15, probe_every: int = 20, seed_samples: int = 3) -> None:
        self.hysteresis = hysteresis
        self.seed_samples = seed_samples
        self.probe_every = probe_every
        self.current = Where.REMOTE

    def decide(self, inp: PolicyInput) -> Decision:
        est = inp.estimates
        local, remote = est.local_ms.value, est.remote_ms.value
        if not inp.remote_allowed:
            return self.blocked(inp)
        seeding = self._seeding(est.local_ms.samples, est.remote_ms.samples)
        if seeding is not None:
            return Decision(seeding, f"adaptive: measuring the {seeding} path", local, remote)
        assert local is not None and remote is not None
        choice, why = self._choose(
            local, remote, est.local_ms.high or local, est.remote_ms.high or remote, inp.deadline_ms
        )
        self.current = choice
        other = Where.LOCAL if choice == Where.REMOTE else Where.REMOTE
        if self.probe_every and inp.frame_index % self.probe_every == self.probe_every - 1:
            return Decision(other, f"adaptive: probe of the {other} path to keep its estimate fresh", local, remote)
        return Decision(choice, why, local, remote)

    def _seeding(self, local_samples: int, remote_samples: int) -> Where | None:
        """Alternate paths until each has `seed_samples` measurements; one sample is too noisy to trust."""
        if remote_samples < self.seed_samples and remote_samples <= local_samples:
            return Where.REMOTE
        if local_samples < self.seed_samples:
            return Where.LOCAL
        return Where.REMOTE if remote_samples < self.seed_samples else None

    def _choose(
        self, local: float, remote: float, local_high: float, remote_high: float, deadline: float
    ) -> tuple[Where, str]:
        local_meets, remote_meets = local_high <= deadline, remote_high <= deadline
        if local_meets != remote_meets:
            winner = Where.LOCAL if local_meets else Where.REMOTE
            return winner, f"adaptive: only {winner} is expected within the {deadline:.0f} ms deadline"
        best = Where.LOCAL if local < remote else Where.REMOTE
        if best != self.current:
            mine, theirs = (remote, local) if self.current == Where.REMOTE else (local, remote)
            if theirs > mine * (1 - self.hysteresis):
                best = self.current
        return best, f"adaptive: local ~{local:.0f} ms vs remote ~{remote:.0f} ms"
