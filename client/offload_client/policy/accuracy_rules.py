"""What the adaptive policy knows of accuracy: each path's share of words read, the server's at each JPEG
quality, and the device variant the accuracy objective can afford in time. Mixed into `Adaptive`
(policy/adaptive.py), whose state it keeps; the decision itself stays there."""

from __future__ import annotations

from offload_client.policy.base import PolicyInput
from offload_client.policy.odds import Prediction
from offload_core.types import Where

# The accuracy objective runs the device variant expected to read the most words in time: its accuracy times
# its chance of meeting the deadline. A variant less likely than this to meet it is not taken whatever it
# reads (the deadline is the objective's promise: a frame in ten late at most); and only once the spread rests
# on this many of the device's frames (after three it is still a guess).
IN_TIME_AT_LEAST = 0.9
VARIANT_AFTER_FRAMES = 5


class AccuracyRules:
    """Each path's expected accuracy for the frame at hand, and the device variant to run it on."""

    objective: str
    # Each path's share of words read: Where.LOCAL (the default device variant), Where.REMOTE (the server at its
    # best JPEG quality) and any other device variant by name.
    accuracy: dict[Where | str, float]
    accuracy_given: bool
    accuracy_floor: float | None
    jpeg_accuracy: dict[int, float]
    local_accuracy: float
    remote_accuracy: float

    def _take_measured_accuracy(self, inp: PolicyInput) -> None:
        """Each path's accuracy as the model's own benchmark measured it, unless the app gave its own."""
        self.jpeg_accuracy = dict(inp.remote_jpeg_accuracy)
        first = inp.device_options[0] if inp.device_options else None
        if not self.accuracy_given and first is not None and first.accuracy is not None and self.jpeg_accuracy:
            self.accuracy = {Where.LOCAL: first.accuracy, Where.REMOTE: self.jpeg_accuracy[max(self.jpeg_accuracy)]}

    def _accurate_enough(self, where: Where) -> bool:
        accuracy = self.local_accuracy if where == Where.LOCAL else self.remote_accuracy
        return self.accuracy_floor is None or accuracy >= self.accuracy_floor

    def _device_variant(
        self, inp: PolicyInput, default: Prediction, extra_ms: float = 0.0
    ) -> tuple[str | None, Prediction, float]:
        """The device variant for this frame, its prediction and its accuracy (None: the default variant).

        The latency objective keeps the default, the fastest. The accuracy objective takes the variant
        with the most words expected in time: its accuracy x its chance of meeting the deadline, among those
        at least `IN_TIME_AT_LEAST` likely to. Its time is the default's prediction plus what the variant
        takes beyond it once it has run; before, the default's prediction times the ratio of their times on
        an empty frame at load (else the benchmark's ratio), plus `extra_ms` (a race's encoding, on the same
        core); its accuracy the one `accuracy` gives by its name, else the device path's plus what the
        benchmark measured it reads beyond the default.

        Before, a variant had to be in time with ~99 % (three deviations of the default's spread): on a
        phone three times slower than this machine the accurate variant almost never qualified, and
        `adaptive-accuracy` read 11-17 points fewer words than an oracle that knew each frame's time.
        """
        base = self.accuracy.get(Where.LOCAL, 0.0)
        options, first = inp.device_options, inp.device_options[0] if inp.device_options else None
        if self.objective != "accuracy" or first is None or first.accuracy is None or not first.latency_ms:
            return None, default, base
        if inp.estimates.local_ms.samples < VARIANT_AFTER_FRAMES:  # the others' times derive from the default's
            return None, default, base
        chosen: tuple[str | None, Prediction, float] = (None, default, base)
        best = base * self._in_time(default, extra_ms, inp.deadline_ms)
        for option in options[1:]:
            if option.accuracy is None or not option.latency_ms:
                continue
            accuracy = self.accuracy.get(option.name, base + option.accuracy - first.accuracy)
            if option.blank_ms and first.blank_ms:
                prior = max(1.0, option.blank_ms / first.blank_ms)
            else:
                prior = option.latency_ms / first.latency_ms
            prediction = Prediction(*inp.estimates.local_variant(option.name, prior))
            chance = self._in_time(prediction, extra_ms, inp.deadline_ms)
            if chance >= IN_TIME_AT_LEAST and accuracy * chance > best:
                chosen, best = (option.name, prediction, accuracy), accuracy * chance
        return chosen

    @staticmethod
    def _in_time(prediction: Prediction, extra_ms: float, deadline_ms: float) -> float:
        """The chance that a device run predicted as `prediction`, `extra_ms` later, meets the deadline."""
        return prediction.p_within(deadline_ms, extra_ms)

    def _remote_accuracy_at(self, quality: int | None) -> float:
        """The server's accuracy for a frame sent at `quality`: the measured one (at the best quality the
        table has) less what the benchmark measured the server loses at `quality`."""
        base, table = self.accuracy.get(Where.REMOTE, 0.0), self.jpeg_accuracy
        if quality is None or quality not in table:
            return base
        return base + table[quality] - table[max(table)]

    def _remote_is_better(self) -> bool:
        """Whether the accuracy objective would rather have the remote answer (its model is more accurate)."""
        return self.objective == "accuracy" and self.remote_accuracy - self.local_accuracy >= 0.005
