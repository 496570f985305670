"""The adaptive policy: predict both paths, pick by objective, without flapping, and keep both estimates fresh."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from offload_client.policy.base import THUMBNAIL_SCALE, Decision, Policy, PolicyInput
from offload_client.policy.energy_rules import DEVICE_PROBE_PAYS, ONE_LATE_SHARE, EnergyRules
from offload_client.policy.estimators import JPEG_LADDER, Estimates
from offload_client.policy.odds import (
    FAIR_CHANCE,
    Prediction,
    RaceOutlook,
    added_misses,
    at_risk,
    expected_race_gain,
    misses_saved,
    races_pay,
    remote_chance,
)
from offload_core.types import Where

OBJECTIVES = ("latency", "accuracy", "energy")
# With equally accurate paths, a race must also make the frame likelier to meet the deadline by this much.
RACE_MISSES_SAVED = 0.02
# With a more accurate server, its answer is this objective's gain: a race for it needs only a small chance
# (one in twenty), as long as its encoding does not make the device miss the deadline more than 1 point more often.
BETTER_ANSWER_CHANCE = 0.05
RACE_ADDED_MISSES = 0.01
MEASURING = "adaptive: measuring the remote path"
WAITING = "adaptive: waiting for the remote path's measurement"


class Adaptive(EnergyRules, Policy):
    """Chooses the device or the server per frame, from what the estimators predict of each.

    - `latency` (the default): the path with the least expected latency. Where the two are close
      and noisy it races them, the first answer serving.
    - `accuracy`: the more accurate path among those expected within the deadline; it races the
      device against the server when the better answer may come in time.
    - `energy`: the path expected to cost the battery least (`policy/joules.py`) among those expected
      within the deadline (and, with `accuracy_floor`, accurate enough). When even a radio that never
      rests between frames would cost more than the device, it sends nothing, not even a probe.
    - Every way: the best JPEG quality the link allows, a switch only when the other path is
      better by `hysteresis`, probes that keep both estimates fresh (a thumbnail in the
      background for `latency`, a race for `accuracy`), and a fresh measurement after an outage.

    `docs/policy.md` tells how each rule came about, with the figures.

    Example:
        >>> from offload_client.policy import Adaptive, Estimates, PolicyInput
        >>> Adaptive().decide(PolicyInput(0, Estimates(), 100.0, True)).reason
        'adaptive: measuring the remote path, racing the device model'
    """

    def __init__(
        self,
        objective: str = "latency",
        hysteresis: float = 0.15,
        probe_every: int = 20,
        probe_after_s: float = 1.0,
        probe_max_s: float = 8.0,
        seed_samples: int = 3,
        accuracy: Mapping[Where | str, float] | None = None,
        ladder: tuple[int, ...] = JPEG_LADDER,
        race_gain: float = 0.1,
        accuracy_floor: float | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
        self.objective = objective
        self.name = "adaptive" if objective == "latency" else f"adaptive-{objective}"
        self.hysteresis = hysteresis
        self.probe_every = probe_every
        self.probe_after_s = probe_after_s
        # Probes back off (x2 up to probe_max_s) while they keep confirming the remote path is clearly
        # worse: on a slow link each one costs the device encode time and uplink bytes for nothing.
        self.probe_interval_s = probe_after_s
        self.probe_max_s = probe_max_s
        # After an outage that follows another with the remote path never in play between them, wait this
        # long (since its last answer) before measuring it again; it doubles with each such outage, from
        # probe_after_s to probe_max_s.
        self.reseed_wait_s = 0.0
        self._outages = 0  # `Estimates.outages` at the last decision
        # Whether the remote path was chosen, raced or close since the last outage (or since the start). Only
        # between outages: the frames an outage itself fails price the path out of play, which is no news.
        self.in_play_since_outage = False
        self.seed_samples = seed_samples
        # Each path's share of words read: Where.LOCAL (the default device variant), Where.REMOTE (the server at
        # its best JPEG quality) and any other device variant by name. Not given: the model's own measurements
        # (PolicyInput carries them from model.yaml); these guesses only stand in for a model without any.
        self.accuracy_given = accuracy is not None
        self.accuracy: dict[Where | str, float] = dict(accuracy or {Where.LOCAL: 0.9, Where.REMOTE: 1.0})
        # Each path's accuracy for the frame at hand: the chosen device variant's (see `_device_variant`), and
        # the server's at the JPEG quality the frame would go at (see `_remote_accuracy`).
        self.local_accuracy = self.accuracy.get(Where.LOCAL, 0.0)
        self.remote_accuracy = self.accuracy.get(Where.REMOTE, 0.0)
        self.jpeg_accuracy: dict[int, float] = {}
        self.ladder = ladder
        self.race_gain = race_gain
        # The energy objective's floor: a path expected to read a smaller share of words is not chosen.
        self.accuracy_floor = accuracy_floor
        # Start on the device: it is always there, and leaving it must be worth the hysteresis margin.
        # None: no incumbent (after an outage the device was forced, not chosen), so no margin either.
        self.current: Where | None = Where.LOCAL
        self.seeded = False

    def decide(self, inp: PolicyInput) -> Decision:
        """The steps, in order; the first that decides the frame wins."""
        est = inp.estimates
        self._take_measured_accuracy(inp)
        default = Prediction(*est.local())
        device, local, self.local_accuracy = self._device_variant(inp, default)
        if not inp.remote_allowed:
            return self._device_alone(inp, device, local)
        if self.objective == "energy":
            spared = self._sending_cannot_pay(inp, local)
            if spared is not None:
                return spared
        # The variant for a frame the device races the server with: the frame's encoding then shares its core.
        race_device = self._device_variant(inp, default, est.encode_ms.high or 0.0)[0]
        seeding = self._seed(inp, local, device, race_device)
        if seeding is not None:
            return seeding
        self._count_outages(est)
        measuring = self._measure_again(inp, local, device, race_device)
        if measuring is not None:
            return measuring
        return self._weigh(inp, local, device, race_device)

    # -- the steps ------------------------------------------------------------------------

    def _device_alone(self, inp: PolicyInput, device: str | None, local: Prediction) -> Decision:
        """Nothing may be sent: the device answers; the accuracy objective still picks its best variant."""
        blocked = self.blocked(inp)
        if device is None:
            return blocked
        why = f"{blocked.reason}; {device} (~{local.mean_ms:.0f} ms) fits the deadline"
        return replace(blocked, reason=why, predicted_local_ms=local.mean_ms, device_variant=device)

    def _seed(
        self, inp: PolicyInput, local: Prediction, device: str | None, race_device: str | None
    ) -> Decision | None:
        """At the start, `seed_samples` of each path, alternating (None once both are measured)."""
        est = inp.estimates
        # The energy objective measured the device first (`_sending_cannot_pay`): only the link is left.
        if self.objective == "energy":
            seeding = Where.REMOTE if est.remote_ms.samples < self.seed_samples else None
        else:
            seeding = None if self.seeded else self._seeding(est.local_ms.samples, est.remote_ms.samples)
        self.seeded = seeding is None
        if seeding is None:
            return None
        if seeding == Where.REMOTE and not inp.probe_in_flight:
            # Smallest first: the frames a slow link will carry, and a huge frame's wait is no news.
            quality = self.ladder[::-1][est.remote_ms.samples % len(self.ladder)]
            if self.objective == "energy":
                # Hedged, not raced: the device starts only if no answer is back by its latest start (it still
                # finishes by the deadline), so a link that answers in time costs no device run.
                return Decision(Where.REMOTE, MEASURING, local.mean_ms, None, quality, seed=True, device_variant=device)
            return self._probe(MEASURING, est, quality, True, race_device)
        if est.local_ms.samples >= self.seed_samples:  # the device is measured: this frame waits for a probe
            return Decision(Where.LOCAL, WAITING, local.mean_ms, est.remote_ms.value, device_variant=device)
        return Decision(Where.LOCAL, "adaptive: measuring the local path", est.local_ms.value, est.remote_ms.value)

    def _count_outages(self, est: Estimates) -> None:
        """After an outage, how long to wait before measuring the remote path again."""
        if est.outages > self._outages:  # the remote estimates were reset: an outage, or a probe that waited one out
            if self.in_play_since_outage:
                self.reseed_wait_s = 0.0  # the path was worth having: measure it again at once
            else:
                # Outage after outage, and the path never in play between them: each new round of measuring
                # it costs the device's core races and encodes for nothing.
                self.reseed_wait_s = min(self.probe_max_s, max(self.probe_after_s, self.reseed_wait_s * 2))
            self.in_play_since_outage = False
        self._outages = est.outages

    def _measure_again(
        self, inp: PolicyInput, local: Prediction, device: str | None, race_device: str | None
    ) -> Decision | None:
        """Too little known of the remote path since its estimates were reset: measure it as at the start.

        In races (the app waits no longer than for the device), at several qualities, so that the link
        model tells RTT from throughput within a few frames (None: the path is measured).
        """
        est = inp.estimates
        if est.remote_ms.samples >= self.seed_samples:
            return None
        self.current = None
        if inp.probe_in_flight:
            return Decision(Where.LOCAL, WAITING, local.mean_ms, device_variant=device)
        if est.remote_ms.samples == 0 and inp.since_remote_s < self.reseed_wait_s:  # (once started, at once)
            why = f"adaptive: the remote path keeps failing; measuring it again {self.reseed_wait_s:.0f} s on"
            return Decision(Where.LOCAL, why, local.mean_ms, device_variant=device)
        quality = self.ladder[::-1][est.remote_ms.samples % len(self.ladder)]
        if self.objective != "accuracy" and self.reseed_wait_s > 0 and est.server_ms.value is not None:
            # Out of play before this outage too: a race would not win, only the link needs timing
            # (the frame's size and the server's time are known from before).
            return self._thumbnail_probe(MEASURING, est, quality, seed=True)
        return self._probe(MEASURING, est, quality, True, race_device)

    def _weigh(self, inp: PolicyInput, local: Prediction, device: str | None, race_device: str | None) -> Decision:
        """Both paths are measured: choose by the objective, race where it pays, probe when due."""
        est, deadline = inp.estimates, inp.deadline_ms
        costs: tuple[float, float] | None = None  # (device, sent) mJ, for the energy objective
        link = self._remote(est, deadline)
        if self.objective == "energy" and self.accuracy_floor is not None:
            link = self._cheapest_quality(inp, link)
        self.remote_accuracy = self._remote_accuracy_at(link.quality)
        late_share = est.remote_late.value or 0.0
        remote = at_risk(link, late_share, local, deadline)
        outlook = RaceOutlook(remote_chance(link, late_share, est, deadline), est.encode_ms.high or 0.0, races_pay(est))
        if self.objective == "energy":
            costs = self._energy_of(inp, local, remote)
            choice, why, race = (*self._choose_energy(inp, local, remote, costs), False)
            close = costs[1] <= costs[0] * (1 + self.hysteresis)
            # The server is the cheaper path, kept out only by the deadline: probe it whole, in a race, so
            # that a late answer or two does not shut it out for good (a thumbnail teaches only the link).
            whole_probe = costs[1] < costs[0]
        else:
            choice, why, race = self._choose(local, remote, deadline, outlook)
            close = remote.mean_ms <= local.mean_ms * (1 + self.hysteresis)
            whole_probe = self.objective == "accuracy"
        if device is not None:
            why = f"{why}; on the device, {device} (~{local.mean_ms:.0f} ms) fits the deadline"
        self.current = choice  # the incumbent, for the hysteresis: the path preferred, raced or not
        sooner = self._race_gain(inp, local, remote, outlook, late_share)
        if sooner is not None and sooner >= self.race_gain * local.mean_ms:
            # Close and noisy paths: frame by frame, the first of the two is well ahead of the better alone.
            why = f"{self.name}: racing both paths, the first answer expected ~{sooner:.0f} ms sooner ({why})"
            choice, race = Where.REMOTE, True
        if self.objective == "accuracy" and choice == Where.REMOTE and remote.high_ms + local.high_ms > deadline:
            # The deadline is this objective's promise, and a device started at the hedge would finish past
            # it: run it at once. The frame goes out anyway, so this costs only the device's run.
            race = True
        self._keep_measured(est, choice, close)
        if choice == Where.REMOTE and not race and self._device_probe_due(inp.frame_index, costs):
            if not self._remote_is_better():
                return Decision(Where.LOCAL, "adaptive: probe of the local path", local.mean_ms, remote.mean_ms)
            # The device's answer is the worse one: measure it in a race, where the server's still serves.
            race, why = True, f"{why}; racing the device model to measure it"
        # The energy objective probes only a remote path close to paying: each probe extends the radio's tail.
        due = inp.since_remote_s >= self.probe_interval_s and not inp.probe_in_flight
        if costs is not None and choice == Where.LOCAL and not inp.probe_in_flight:
            ask = self._cheap_to_ask(inp, remote, costs)
            if ask and link.high_ms <= deadline and late_share <= ONE_LATE_SHARE:
                # Kept out by one late answer alone, the link itself in time. A race the faster device wins pays
                # both paths (~600 mJ on Wi-Fi against ~130 sent): hedged, the device runs only if this answer
                # is late too.
                why = f"{why}; sent all the same, hedged: the server is cheaper and was late only once lately"
                return Decision(Where.REMOTE, why, local.mean_ms, remote.mean_ms, remote.quality)
            # Races only while the server wins some (`races_pay`): one the device wins costs both paths.
            due = due or (ask and outlook.pays)
        if choice == Where.LOCAL and due and (self.objective != "energy" or close):
            return self._probe_remote(est, remote, race_device, whole_probe)
        if choice == Where.LOCAL:
            return Decision(choice, why, local.mean_ms, remote.mean_ms, device_variant=device)
        return Decision(
            choice,
            why,
            local.mean_ms,
            remote.mean_ms,
            remote.quality,
            race=race,
            prefer_remote=self._remote_is_better(),
            device_variant=race_device if race else None,  # a hedged frame's device starts late: the fastest
        )

    def _race_gain(
        self, inp: PolicyInput, local: Prediction, remote: Prediction, outlook: RaceOutlook, late_share: float
    ) -> float | None:
        """How much sooner (ms) a race's first answer is expected than the better path's alone, net of the
        encoding it adds to the device (None: no race now).

        Only for the latency objective, on a link that has lately answered in time, while races pay,
        and not while a remote call is still out (a race would queue behind it; and a race lost to the
        device is no failure, so races into a link going dark would keep the breaker from hearing of it).
        """
        reliable = self.objective == "latency" and late_share < 0.05 and not inp.probe_in_flight and outlook.pays
        return expected_race_gain(local, remote) - outlook.cost_ms if reliable else None

    def _keep_measured(self, est: Estimates, choice: Where, close: bool) -> None:
        """Probe the remote path more often while it is in play (chosen or `close`), less while it stays
        clearly worse."""
        if choice == Where.REMOTE or close:
            self.probe_interval_s = self.probe_after_s  # the remote path is in play: keep it measured
            self.in_play_since_outage = True
        if est.link.samples and not est.link.separated:
            # Back off only on a measured verdict. Until frames of several sizes have come back, large
            # frames are predicted as if all the time were transfer: a guess only the next probes correct.
            self.probe_interval_s = self.probe_after_s

    def _device_probe_due(self, frame_index: int, costs: tuple[float, float] | None = None) -> bool:
        """Every `probe_every` frames; given the energy objective's `costs`, only while the device may pay."""
        if costs is not None and costs[0] > DEVICE_PROBE_PAYS * costs[1]:
            return False
        return bool(self.probe_every) and frame_index % self.probe_every == self.probe_every - 1

    def _probe_remote(self, est: Estimates, remote: Prediction, race_device: str | None, whole: bool) -> Decision:
        """A probe of the remote path, which the device has served alone for `probe_interval_s`: the frame
        raced against the device (`whole`), else a thumbnail that times the link alone."""
        self.probe_interval_s = min(self.probe_max_s, self.probe_interval_s * 2)
        quality = remote.quality or self.ladder[-1]
        if not est.link.separated:  # frames of several sizes, so that the probes end the guessing
            quality = self.ladder[::-1][len(est.link.samples) % len(self.ladder)]
        if not whole:
            # The device is the faster (or cheaper) path: a race would rarely win, so the probe only times the link.
            return self._thumbnail_probe("adaptive: probe of the remote path", est, quality)
        return self._probe("adaptive: probe of the remote path", est, quality, False, race_device)

    # -- the pieces -----------------------------------------------------------------------

    def _probe(self, why: str, est: Estimates, quality: int, seed: bool = False, device: str | None = None) -> Decision:
        """A measurement of the remote path with this frame, raced against the device model.

        The device starts at once, so measuring never keeps the app waiting longer than the device
        would; the server's answer serves the frame if it comes first (with a more accurate server,
        if it comes by the deadline). A race the device wins goes on as a background probe.
        """
        local, remote = est.local_ms.value, est.remote_ms.value
        why = f"{why}, racing the device model"
        self.remote_accuracy = self._remote_accuracy_at(quality)
        prefer = self._remote_is_better()
        return Decision(
            Where.REMOTE, why, local, remote, quality, race=True, prefer_remote=prefer, seed=seed, device_variant=device
        )

    @staticmethod
    def _thumbnail_probe(why: str, est: Estimates, quality: int, seed: bool = False) -> Decision:
        """A measurement of the link alone: the device answers the frame, a thumbnail of it goes out.

        A third of a frame's bytes on a link that is not in use; the link model (RTT and throughput)
        then predicts the frame at any size. Its answer never serves the frame.
        """
        why = f"{why} with a thumbnail, in the background"
        local, remote = est.local_ms.value, est.remote_ms.value
        return Decision(Where.LOCAL, why, local, remote, quality, shadow=True, probe_scale=THUMBNAIL_SCALE, seed=seed)

    def _seeding(self, local_samples: int, remote_samples: int) -> Where | None:
        """Alternate paths until each has `seed_samples` measurements; one sample is too noisy to trust."""
        if remote_samples < self.seed_samples and remote_samples <= local_samples:
            return Where.REMOTE
        if local_samples < self.seed_samples:
            return Where.LOCAL
        return Where.REMOTE if remote_samples < self.seed_samples else None

    def _remote(self, est: Estimates, deadline_ms: float) -> Prediction:
        """The best remote option: the highest quality predicted to meet the deadline, else the fastest."""
        options = [(q, est.remote_at(q)) for q in self.ladder]
        known = [Prediction(p[0], p[1], q) for q, p in options if p is not None]
        if not known:  # no link model yet: the plain round-trip average
            return Prediction(est.remote_ms.value or 0.0, est.remote_ms.high or 0.0, None)
        for p in known:
            if p.high_ms <= deadline_ms:
                return p
        return min(known, key=lambda p: p.mean_ms)

    def _choose(
        self, local: Prediction, remote: Prediction, deadline: float, outlook: RaceOutlook
    ) -> tuple[Where, str, bool]:
        """The path, why, and whether to race the device model against it from the start."""
        numbers = f"local ~{local.mean_ms:.0f} ms vs remote ~{remote.mean_ms:.0f} ms"
        if remote.quality is not None:
            numbers += f" at q{remote.quality}"
        # The deadline rules belong to the accuracy objective, whose promise is the deadline; the latency
        # objective's is the least expected latency, which a path "within the deadline" may not have.
        if self.objective == "accuracy":
            meets = {Where.LOCAL: local.high_ms <= deadline, Where.REMOTE: remote.high_ms <= deadline}
            acc_local, acc_remote = self.local_accuracy, self.remote_accuracy
            if all(meets.values()) and abs(acc_remote - acc_local) >= 0.005:
                best = Where.REMOTE if acc_remote > acc_local else Where.LOCAL
                why = f"adaptive-accuracy: both meet the {deadline:.0f} ms deadline, {best} is more accurate"
                return best, why, False
            if (
                self._remote_is_better()
                and not meets[Where.REMOTE]
                and outlook.chance >= BETTER_ANSWER_CHANCE
                and added_misses(local, deadline, outlook.cost_ms) <= RACE_ADDED_MISSES
            ):
                # The better answer may come in time, and the device's is there if it does not: the frame
                # waits for the server until the deadline, never past it. The price is the uplink bytes.
                why = (
                    f"{self.name}: racing both paths for the more accurate answer, the server's if it comes "
                    f"by the {deadline:.0f} ms deadline ({numbers})"
                )
                return Where.REMOTE, why, True
            if meets[Where.LOCAL] != meets[Where.REMOTE]:
                winner = Where.LOCAL if meets[Where.LOCAL] else Where.REMOTE
                why = f"{self.name}: only {winner} is expected within the {deadline:.0f} ms deadline ({numbers})"
                return winner, why, False
            fair = not meets[Where.LOCAL] and outlook.pays and outlook.chance >= FAIR_CHANCE
            saved = misses_saved(local, outlook.chance, deadline, outlook.cost_ms) if fair else 0.0
            if fair and saved >= RACE_MISSES_SAVED:
                # Neither path is sure to be in time, but together they are likelier to be: the frame's
                # deadline is missed only if both miss it. The price is the uplink bytes of every race.
                # Only while races have paid: on content that makes the device late the server is slower
                # too (a bigger JPEG, more words), so the two misses are not independent (docs/policy.md).
                why = (
                    f"{self.name}: racing both paths, neither is sure of the {deadline:.0f} ms deadline; "
                    f"together ~{saved:.0%} fewer misses ({numbers})"
                )
                return Where.REMOTE, why, True

        # Equally accurate paths: the latency objective takes the lower mean; the accuracy objective, whose
        # promise is the deadline, the lower pessimistic time (the path more likely to be in time).
        def cost(p: Prediction) -> float:
            return p.high_ms if self.objective == "accuracy" else p.mean_ms

        best = Where.LOCAL if cost(local) < cost(remote) else Where.REMOTE
        if self.current is not None and best != self.current:
            mine, theirs = (remote, local) if self.current == Where.REMOTE else (local, remote)
            if cost(theirs) > cost(mine) * (1 - self.hysteresis):
                best = self.current
        return best, f"{self.name}: {numbers}", False
