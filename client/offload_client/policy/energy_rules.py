"""The energy objective's rules: joules per path, the JPEG quality that costs least, and when sending can
never pay. Mixed into `Adaptive` (policy/adaptive.py); the joules themselves are `policy/joules.py`'s."""

from __future__ import annotations

from offload_client.policy.accuracy_rules import AccuracyRules
from offload_client.policy.base import Decision, PolicyInput
from offload_client.policy.joules import device_mj, sending_floor_mj, sent_mj
from offload_client.policy.odds import Prediction
from offload_core.types import Where

# One late answer among answers in time lifts the late share to ~0.2 (the average's weight): the energy
# objective sends on through it, hedged as any frame; two close together (~0.36) are a pattern it races.
ONE_LATE_SHARE = 0.25
# The energy objective probes the device only while it could become the cheaper path: at more than twice a
# sent frame's joules its time would have to halve first, and each probe is a whole device run.
DEVICE_PROBE_PAYS = 2.0


class EnergyRules(AccuracyRules):
    """The cheaper path in joules among those in time (and accurate enough, with a floor)."""

    name: str
    ladder: tuple[int, ...]
    hysteresis: float
    current: Where | None

    def _sending_cannot_pay(self, inp: PolicyInput, local: Prediction) -> Decision | None:
        """The energy objective's first question: can sending ever cost less than the device? (None: it may.)

        The device is measured first, once (no probe before it). Then if even the radio's floor at this frame
        rate (`sending_floor_mj`) costs more than the device, and the device is in time and accurate
        enough, the device answers and nothing is sent: a probe would wake the radio for a whole tail.
        """
        est = inp.estimates
        smallest = est.jpeg.predict(min(self.ladder))
        # The smallest frame's bytes are part of the floor (on 3G 24 KB cost ~170 mJ): encoding one tells them.
        encode_at = min(self.ladder) if smallest is None else None
        if not est.local_ms.samples:  # one run tells its joules; its deadline check tightens as runs come
            why = f"{self.name}: measuring the device first"
            return Decision(Where.LOCAL, why, est.local_ms.value, encode_at=encode_at)
        floor = sending_floor_mj(inp, (smallest or 0.0) * est.upload_share, est.encode_ms.value or 0.0)
        # Judged by a typical run (the median over the window): two slow runs early on, or one 1.8 s stall,
        # must not lift the device over the floor or past the deadline and wake the radio (~8.5 J on 3G,
        # ~13 J on LTE, then more to measure the link) for a link that cannot pay.
        typical_ms = est.local_fit.median() or local.mean_ms
        own = device_mj(inp, typical_ms)
        # "In time" by a typical run, not the pessimistic time: on a device near the deadline that would send
        # probes (a whole LTE tail each) after a server no cheaper and no sooner. Leaving the device must be
        # worth the hysteresis margin, as everywhere: the floor is a bound no link reaches.
        may_pay = floor is None or floor * (1 + self.hysteresis) < own
        if may_pay or typical_ms > inp.deadline_ms or not self._accurate_enough(Where.LOCAL):
            return None
        why = (
            f"{self.name}: the device ~{own:.0f} mJ a frame; sent, a frame could not cost less than ~{floor:.0f} mJ "
            f"({inp.radio.name} radio, frames {inp.frame_interval_s:.2f} s apart)"
        )
        return Decision(Where.LOCAL, why, local.mean_ms, est.remote_ms.value, encode_at=encode_at)

    def _cheap_to_ask(self, inp: PolicyInput, remote: Prediction, costs: tuple[float, float]) -> bool:
        """Whether to ask the server on this frame, though it is not chosen: it would be the cheaper path,
        kept out only by the deadline (late answers), and asking costs less than what one frame sent would
        save (on Wi-Fi, ~130 mJ of radio against ~500 mJ saved). `_weigh` sends it hedged after one late
        answer, else races it while races pay. Each answer is a sample: a late answer or two then leaves the
        late share within a few frames, not a probe every few seconds."""
        device, sent = costs
        return remote.high_ms > inp.deadline_ms and sent <= device - sent and self._accurate_enough(Where.REMOTE)

    def _energy_of(self, inp: PolicyInput, local: Prediction, remote: Prediction) -> tuple[float, float]:
        """(device, sent) mJ expected for this frame: the device's run, or the frame sent (`_sent_mj`)."""
        return device_mj(inp, local.mean_ms), self._sent_mj(inp, remote)

    @staticmethod
    def _sent_mj(inp: PolicyInput, remote: Prediction) -> float:
        """The frame at the remote prediction's quality, on the air from its send until its answer."""
        est = inp.estimates
        encode = est.encode_ms.value or 0.0
        size = est.jpeg.predict(remote.quality) if remote.quality is not None else None
        return sent_mj(inp, remote.mean_ms - encode, (size or 0.0) * est.upload_share, encode)

    def _cheapest_quality(self, inp: PolicyInput, best: Prediction) -> Prediction:
        """With an accuracy floor, the JPEG quality that costs the battery least among those in time whose
        reading stays at the floor (fewer bytes, less time on the air); none such: `best`, the highest in time.

        Without a floor the energy objective keeps the latency objective's quality: the lowest would
        always be cheapest, and nothing would say how many words it may cost.
        """
        options = []
        for quality in self.ladder:
            known = inp.estimates.remote_at(quality)
            if known is None or known[1] > inp.deadline_ms:
                continue
            if self.accuracy_floor is not None and self._remote_accuracy_at(quality) < self.accuracy_floor:
                continue
            options.append(Prediction(known[0], known[1], quality))
        return min(options, key=lambda p: self._sent_mj(inp, p)) if options else best

    def _choose_energy(
        self, inp: PolicyInput, local: Prediction, remote: Prediction, costs: tuple[float, float]
    ) -> tuple[Where, str]:
        """The cheaper path among those expected in time and accurate enough (else the likelier in time).

        The device is in time by its mean, as the latency objective judges it (whose misses this one is held
        to); the server only by its pessimistic time, late answers priced in (`at_risk`): a frame sent for
        its joules must not be a frame late.
        """
        deadline = inp.deadline_ms
        numbers = f"local ~{costs[0]:.0f} mJ vs remote ~{costs[1]:.0f} mJ"
        mj = {Where.LOCAL: costs[0], Where.REMOTE: costs[1]}
        expected = {Where.LOCAL: local.mean_ms, Where.REMOTE: remote.high_ms}
        fit = [w for w in (Where.LOCAL, Where.REMOTE) if expected[w] <= deadline and self._accurate_enough(w)]
        if not fit:
            fit = [w for w in (Where.LOCAL, Where.REMOTE) if expected[w] <= deadline]
        if not fit:
            best = min(expected, key=lambda w: expected[w])
            return best, f"{self.name}: neither is expected within the {deadline:.0f} ms deadline, {best} is likelier"
        if len(fit) == 1:
            return fit[0], f"{self.name}: only {fit[0]} is expected in time and accurate enough ({numbers})"
        best = min(fit, key=lambda w: mj[w])
        if self.current is not None and best != self.current and mj[best] > mj[self.current] * (1 - self.hysteresis):
            best = self.current
        return best, f"{self.name}: {numbers}"
