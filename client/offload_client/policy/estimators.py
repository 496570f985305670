"""Running estimates of each path's cost, updated from every frame's own record (no probe traffic).

The remote path is modelled as encode + uplink + server: the uplink part as
`rtt + bytes / throughput`, fitted to the frames' round trips minus the time
the server reports for itself. Each estimate keeps a mean and a pessimistic
high quantile, because a deadline is missed by the tail, not the mean.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

# The JPEG qualities the remote path may use, best first. Measured on the sample video, the
# recognizer reads q35 as well as q90 at a fifth of the bytes; lower starts to lose small words.
JPEG_LADDER = (90, 70, 50, 35)
# Typical size of a frame at each quality relative to q90, until sizes are measured.
_JPEG_SIZE_FACTOR = {90: 1.0, 70: 0.45, 50: 0.3, 35: 0.22}


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

    def reset(self) -> None:
        self.value, self.deviation, self.samples = None, 0.0, 0

    @property
    def high(self) -> float | None:
        """A pessimistic estimate (mean + 2 deviations), roughly a 95th percentile."""
        return None if self.value is None else self.value + 2 * self.deviation


@dataclass
class LinkEstimate:
    """Uplink throughput and round-trip time, fitted to (request bytes, network time) pairs.

    A least-squares line over the last `window` frames: its slope is 1/throughput
    and its intercept the RTT. Frame sizes vary with content and JPEG quality, which
    is what makes the two separable; when they barely vary, the whole time is
    charged to throughput (the pessimistic reading for large frames).
    """

    window: int = 20
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=20))
    residual: Ewma = field(default_factory=Ewma)
    rtt_ms: float | None = None
    bytes_per_ms: float | None = None
    # Whether the line separates RTT from throughput; until then large frames are predicted pessimistically.
    separated: bool = False

    def update(self, request_bytes: int, network_ms: float) -> None:
        if self.bytes_per_ms is not None:
            self.residual.update(network_ms - self.predict_ms(request_bytes))
        self.samples.append((float(request_bytes), max(network_ms, 0.01)))
        self._fit()

    def _fit(self) -> None:
        x = np.array([s[0] for s in self.samples])
        y = np.array([s[1] for s in self.samples])
        if len(x) >= 4 and x.max() > 1.3 * x.min():
            slope, intercept = np.polyfit(x, y, 1)
            residuals = np.abs(y - (slope * x + intercept))
            if len(x) >= 6 and residuals.max() > 3 * np.median(residuals) + 1.0:
                keep = residuals < residuals.max()  # one hiccup (a scheduler stall) must not bend the line
                slope, intercept = np.polyfit(x[keep], y[keep], 1)
            if slope > 0 and intercept >= 0:
                self.bytes_per_ms, self.rtt_ms, self.separated = 1.0 / slope, float(intercept), True
                return
        # Not separable (yet): no RTT, all the time is transfer, the pessimistic reading.
        self.rtt_ms, self.separated = 0.0, False
        self.bytes_per_ms = float((x * x).sum() / (x * y).sum())

    def predict_ms(self, request_bytes: float) -> float:
        """Expected network time for a request of this size (needs at least one sample)."""
        assert self.bytes_per_ms is not None and self.rtt_ms is not None
        return self.rtt_ms + request_bytes / self.bytes_per_ms

    def predict_high_ms(self, request_bytes: float) -> float:
        return self.predict_ms(request_bytes) + max(0.0, self.residual.value or 0.0) + 2 * self.residual.deviation

    @property
    def uplink_mbit_s(self) -> float | None:
        return None if self.bytes_per_ms is None else self.bytes_per_ms * 8 / 1000

    def reset(self) -> None:
        self.samples.clear()
        self.residual.reset()
        self.rtt_ms = self.bytes_per_ms = None
        self.separated = False


@dataclass
class JpegSizes:
    """How many bytes a frame takes at each JPEG quality, learned from what was sent."""

    by_quality: dict[int, Ewma] = field(default_factory=lambda: {q: Ewma() for q in JPEG_LADDER})

    def update(self, quality: int, size: int) -> None:
        self.by_quality.setdefault(quality, Ewma()).update(size)

    def predict(self, quality: int) -> float | None:
        known = self.by_quality.get(quality)
        if known is not None and known.value is not None:
            return known.value
        # Scale from the nearest measured quality by the typical size ratio.
        for q, e in self.by_quality.items():
            if e.value is not None and q in _JPEG_SIZE_FACTOR and quality in _JPEG_SIZE_FACTOR:
                return e.value * _JPEG_SIZE_FACTOR[quality] / _JPEG_SIZE_FACTOR[q]
        return None


@dataclass
class ContentFit:
    """Time as a line in a frame's content, `a + b * boxes`, fitted to the last `window` frames.

    A frame full of words costs a text spotter far more than an empty one (one recognizer
    call per word: on the device 100 ms vs 900 ms), and where a video's content changes
    slowly the previous frame's box count predicts the next frame's cost better than any
    average; `beats_average` says whether it did on the frames seen. Until the boxes vary
    enough to fit a line, it has no opinion (None).
    """

    window: int = 30
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=30))
    # How far off the prediction for a frame was, made (as the policy makes it) from the frame before
    # it: the error of guessing the next frame's content included, not just that of the line.
    residual: Ewma = field(default_factory=Ewma)
    line: tuple[float, float] | None = None
    last_boxes: int | None = None
    # Whether the line, predicting each frame from the one before, beat the plain average (see `_judge`).
    beats_average: bool = False

    def update(self, boxes: int, ms: float) -> None:
        predicted = self.predict(self.last_boxes)
        if predicted is not None:
            self.residual.update(abs(ms - predicted))
        self.last_boxes = boxes
        self.samples.append((float(boxes), ms))
        x = np.array([s[0] for s in self.samples])
        y = self._times()
        if len(x) >= 6 and len(set(x.tolist())) >= 3:
            slope, intercept = np.polyfit(x, y, 1)
            self.line = (float(intercept), max(0.0, float(slope)))
            self.beats_average = self._judge(x, y, self.line)

    def predict(self, boxes: int | None) -> float | None:
        if self.line is None or boxes is None:
            return None
        return max(1.0, self.line[0] + self.line[1] * boxes)

    def average(self) -> tuple[float, float] | None:
        """(mean, high) over the window, the prediction the line must beat; None with too few frames.

        Where content does not persist, one heavy frame says nothing of the next, yet it would
        throw a fast-moving average far up (one 800 ms frame among 300 ms ones: +150 ms at α=0.3);
        the window's mean moves a fifth as far.
        """
        if len(self.samples) < 6:
            return None
        y = self._times()
        mean = float(y.mean())
        return mean, mean + 2 * float(np.abs(y - mean).mean())

    def median(self) -> float | None:
        """The middle time over the window (None before any): a typical frame's, which a few slow ones
        (a busy core, a page fault) do not move."""
        return float(np.median(self._times())) if self.samples else None

    def _times(self) -> np.ndarray:
        """The window's times (ms), oldest first."""
        return np.array([s[1] for s in self.samples])

    def predict_high(self, boxes: int | None) -> float | None:
        mean = self.predict(boxes)
        return None if mean is None else mean + 2 * (self.residual.value or 0.0)

    @staticmethod
    def _judge(x: np.ndarray, y: np.ndarray, line: tuple[float, float]) -> bool:
        """Over the window, did the line predict each frame from the one before better than the average did?

        When frames are far apart in a video, the last frame's words say little about the
        next one's (on the sample video 0.5 s apart, device times correlate 0.2 from frame
        to frame), and the line would only add its noise: a heavy frame would make the next
        one look heavy too. Judged over the whole window, and only a clear win (a quarter less
        error) counts: on 30 noisy frames, a near tie flips with each heavy frame, exactly when
        trusting the line costs most.
        """
        from_previous = np.maximum(1.0, line[0] + line[1] * x[:-1])
        return float(np.abs(y[1:] - from_previous).mean()) < 0.75 * float(np.abs(y[1:] - y.mean()).mean())

    def reset(self) -> None:
        self.samples.clear()
        self.residual.reset()
        self.line = None
        self.last_boxes = None
        self.beats_average = False


@dataclass
class Estimates:
    """Everything the policies know, in milliseconds (and bytes)."""

    local_ms: Ewma = field(default_factory=Ewma)
    # Whole remote round trips, as the app saw them (encode + network + server).
    remote_ms: Ewma = field(default_factory=Ewma)
    encode_ms: Ewma = field(default_factory=Ewma)
    server_ms: Ewma = field(default_factory=Ewma)
    # The wait in the server's queue its answers have shown (`server_queue_ms`): what is usual there.
    server_queue_ms: Ewma = field(default_factory=Ewma)
    # The server's own word on how busy it is now (its load signal, in answers and refusals): how much
    # longer than usual the next request will wait there, ms. Every prediction of the server adds it, so
    # a busy server is priced in before its answers come late, not after.
    server_busy_ms: float = 0.0
    link: LinkEstimate = field(default_factory=LinkEstimate)
    jpeg: JpegSizes = field(default_factory=JpegSizes)
    # Share of remote attempts that did not serve their frame (1: failed, or lost the race against the
    # device model started at the hedge) rather than answering first (0).
    remote_late: Ewma = field(default_factory=lambda: Ewma(alpha=0.2))
    # Share of recent remote round trips (frames, races, probes) back within the deadline (1) or not (0):
    # the measured chance that a race's remote answer is in time, which the link model can overrate.
    remote_in_time: Ewma = field(default_factory=lambda: Ewma(alpha=0.2))
    # Share of recent races (seeds aside) whose remote answer served the frame (1) rather than the device's (0).
    race_won: Ewma = field(default_factory=lambda: Ewma(alpha=0.2))
    # Device and server time against the frame's content, and the content of the last frame seen.
    local_fit: ContentFit = field(default_factory=ContentFit)
    server_fit: ContentFit = field(default_factory=ContentFit)
    content: int | None = None
    # Each other device variant's time beyond the default variant's, on the same content (ms).
    variant_extra: dict[str, Ewma] = field(default_factory=dict)
    outages: int = 0  # how many times the remote estimates were reset (`after_outage`)
    # The next upload's share of a whole frame's bytes: < 1 when continuous mode sends regions of it.
    upload_share: float = 1.0

    def local(self) -> tuple[float, float]:
        """(mean, high) device latency for the next frame: by its expected content when that predicts
        better, else the average of the last frames (the running average until there are enough)."""
        return self._by_content(self.local_fit) or (
            self.local_ms.value or 0.0,
            self.local_ms.high or 0.0,
        )

    def local_for(self, boxes: int) -> float | None:
        """The default device variant's expected time for a frame with `boxes` words (None: nothing known)."""
        by_content = self.local_fit.predict(boxes) if self.local_fit.beats_average else None
        return by_content or self.local_ms.value

    def local_variant(self, variant: str, prior_ratio: float) -> tuple[float, float]:
        """(mean, high) for another device variant: before it has run, the default's prediction times
        `prior_ratio`; once it has, the default's prediction plus what it took beyond the default.

        Added, not multiplied, once measured: the variants differ in their fixed part (the text spotter's
        detector size) and share the part that grows with the content (one recognizer call per word), so
        a ratio measured on busy frames (1.5x) is far off on sparse ones (2.3x). The prior is a ratio
        (the caller's: their times on an empty frame at load, the largest ratio any content gives).
        """
        mean, high = self.local()
        extra = self.variant_extra.get(variant)
        if extra is None or extra.value is None:
            # The spread is the default's (content and contention), not scaled: the extra part is fixed.
            return mean * prior_ratio, high + mean * (prior_ratio - 1)
        # The default's spread already carries the frame-to-frame noise: adding the extra's own spread too
        # would count it twice.
        return mean + extra.value, high + extra.value

    def server(self) -> tuple[float, float] | None:
        """(mean, high) server time for the next frame: by content or average, plus what the server says
        it is busier than usual (`server_busy_ms`)."""
        if self.server_ms.value is None:
            return None
        mean, high = self._by_content(self.server_fit) or (
            self.server_ms.value,
            self.server_ms.high or self.server_ms.value,
        )
        return mean + self.server_busy_ms, high + self.server_busy_ms

    def _by_content(self, fit: ContentFit) -> tuple[float, float] | None:
        """From the frame's expected content where that predicts better; else the window's average."""
        mean, high = fit.predict(self.content), fit.predict_high(self.content)
        if mean is None or high is None or not fit.beats_average:
            return fit.average()
        return mean, high

    def remote_at(self, quality: int) -> tuple[float, float] | None:
        """(mean, high) remote latency if the frame is sent at `quality`; None before any measurement."""
        size = self.jpeg.predict(quality)
        server = self.server()
        if size is not None:
            size *= self.upload_share
        if size is None or self.link.bytes_per_ms is None or server is None:
            return None
        fixed = (self.encode_ms.value or 0.0) + server[0]
        fixed_high = (self.encode_ms.high or 0.0) + server[1]
        return fixed + self.link.predict_ms(size), fixed_high + self.link.predict_high_ms(size)

    def after_outage(self) -> None:
        """Forget what the outage taught: its timeouts say nothing about the link that is back.

        Until the link model has samples again, predictions use the plain round-trip average,
        which the probe that ended the outage has just seeded.
        """
        self.outages += 1
        self.server_busy_ms = 0.0  # a server back from an outage (a restart) starts with an empty queue
        self.remote_ms.reset()
        self.remote_late.reset()
        self.remote_in_time.reset()
        self.race_won.reset()
        self.link.reset()
