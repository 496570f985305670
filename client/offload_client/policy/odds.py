"""The odds the adaptive policy weighs: a path's time as a distribution, and what a race would bring."""

from __future__ import annotations

import math
from dataclasses import dataclass

from offload_client.policy.estimators import Estimates

# A race pays only while the server has lately won at least one race in five.
FAIR_CHANCE = 0.2


@dataclass(frozen=True)
class Prediction:
    """One path's time: its mean and a pessimistic value (mean + 2 mean absolute deviations)."""

    mean_ms: float
    high_ms: float
    quality: int | None = None

    @property
    def sd_ms(self) -> float:
        """The spread: `high` is the mean plus two mean absolute deviations, about 1.6 standard deviations."""
        return max(0.0, self.high_ms - self.mean_ms) / 1.6

    def p_within(self, deadline_ms: float, later_ms: float = 0.0) -> float:
        """The chance of an answer by the deadline (a normal with `sd_ms`), if it comes `later_ms` later."""
        if self.sd_ms == 0.0:
            return 1.0 if self.mean_ms + later_ms <= deadline_ms else 0.0
        return normal_cdf((deadline_ms - self.mean_ms - later_ms) / self.sd_ms)


def normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@dataclass(frozen=True)
class RaceOutlook:
    """What racing this frame would bring."""

    chance: float  # that the remote answer comes by the deadline
    cost_ms: float  # what the race adds to the device's time: the frame's encoding, on the device's core
    pays: bool  # whether the server has lately won at least one race in five (or there is no record yet)


def expected_race_gain(a: Prediction, b: Prediction) -> float:
    """How much sooner the first of two independent paths is expected than the better one alone (ms).

    Clark's expected minimum of two normals: E[min] = m1·Φ(z) + m2·Φ(-z) - θ·φ(z), z = (m2 - m1)/θ,
    θ = sqrt(s1² + s2²). The gain is largest for equal means and wide spreads, and vanishes as one
    path pulls ahead.
    """
    theta = math.hypot(a.sd_ms, b.sd_ms)
    if theta == 0.0:
        return 0.0
    z = (b.mean_ms - a.mean_ms) / theta
    cdf = normal_cdf(z)
    pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    expected_min = a.mean_ms * cdf + b.mean_ms * (1 - cdf) - theta * pdf
    return max(0.0, min(a.mean_ms, b.mean_ms) - expected_min)


def at_risk(remote: Prediction, late_share: float, local: Prediction, deadline_ms: float) -> Prediction:
    """The remote prediction with its misses priced in: losing the race costs the deadline plus a local run.

    The link model predicts the answers that come; the misses are a share of their own. When that
    share passes 5 %, the pessimistic time is a miss, whatever the link model says: otherwise a link
    that misses one frame in four looks "within the deadline".
    """
    miss_ms = deadline_ms + local.mean_ms
    mean = (1 - late_share) * remote.mean_ms + late_share * max(miss_ms, remote.mean_ms)
    high = max(remote.high_ms, miss_ms) if late_share > 0.05 else remote.high_ms
    return Prediction(mean, high, remote.quality)


def races_pay(est: Estimates) -> bool:
    """Whether the server has lately won at least one race in five (or there is no record yet).

    Races the device keeps winning bring nothing, and each costs the device the frame's encoding.
    Where races stop, the probes (races too) keep the record current.
    """
    return est.race_won.samples < 3 or (est.race_won.value or 0.0) >= FAIR_CHANCE


def remote_chance(link: Prediction, late_share: float, est: Estimates, deadline_ms: float) -> float:
    """The chance of the remote answer by the deadline: the link model's, or the share of recent round
    trips that came in time if lower (a link model can overrate a link); none while most came late."""
    if late_share >= 0.5:
        return 0.0
    measured = est.remote_in_time.value
    chance = link.p_within(deadline_ms)
    return chance if measured is None else min(chance, measured)


def misses_saved(local: Prediction, remote_chance: float, deadline: float, race_cost_ms: float) -> float:
    """How much likelier a raced frame is to meet the deadline than the device alone (a share).

    Raced, the frame misses only if both paths do; but the race's encoding shares the device's
    core, which makes the device a little later.
    """
    alone = 1 - local.p_within(deadline)
    raced = (1 - local.p_within(deadline, race_cost_ms)) * (1 - remote_chance)
    return alone - raced


def added_misses(local: Prediction, deadline: float, race_cost_ms: float) -> float:
    """How much likelier the device is to miss the deadline when a race's encoding shares its core."""
    return local.p_within(deadline) - local.p_within(deadline, race_cost_ms)
