"""Deadline-aware admission: refuse at arrival what cannot finish in time, and say how busy the server is.

Per model the server keeps two averages over its own recent requests: what one request takes once it
runs (`service_ms`: decode, model and post-processing), and the time between two requests leaving while
it is busy (`gap_ms`). The gap is the server's real pace, whatever overlaps: batches, two instances,
decoding beside inference (a CPU server runs two requests at once, each taking twice the gap).
A request that arrives with n requests of its model admitted ahead is predicted to finish after n + 1
gaps, less the part of the current gap already gone by (the time since a request last left), and never
sooner than `service_ms`. Predicting n x service instead, as before, refused 31-42 % of deadline refusals
that would have fit (`make bench-fleet`, 8 phones on one core); the mean alone, admitted up to the
deadline, ended 17 % late. So the server also keeps how far its predictions miss (`deviation_ms`, the mean
absolute error of predicted against actual time in the server, as TCP keeps its RTT's deviation), and
admits a request only when the prediction plus `MARGIN` deviations ends in time. One that cannot finish
by its deadline is refused at once with RESOURCE_EXHAUSTED and `retry-after-ms` (when the queue ahead will
have drained enough), instead of queueing only to be skipped: the client's device answers it now, not
after the deadline (as Triton's per-request timeout refuses what would time out). A full queue
(`max_queue`) is refused as before, and so is a client that already holds `max_per_client` places of
it: one phone streaming at 30 fps must not take the queue from fifty that send a frame at a time.
Every answer and refusal carries the load (`ServerLoad`).

Each refusal for a deadline is replayed against what then happened: when the requests that were ahead
of it have left the queue and nothing else waits, the server would have been idle; if the refused request
would then have ended by its deadline (one `service_ms` later), the refusal cost capacity and is counted
(`offload_refused_would_fit_total`). A refusal whose place a later request took cost nothing. The
prediction's error in the refusing direction is measured, not guessed.

Example:
    >>> admission = Admission(["m"], max_queue=8)
    >>> ticket = admission.admit("m", budget_ms=100.0)    # nothing known yet: admitted
    >>> admission.release(ticket, service_ms=80.0)     # until seen busy: one leaves per service
    >>> _ = admission.admit("m", budget_ms=100.0); round(admission.load("m").predicted_wait_ms)
    80
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from offload_server.errors import ServiceError
from offload_server.metrics import Metrics

# The weight of the newest request in the averages: a server's cost moves with its load within seconds.
ALPHA = 0.2
RETRY_AFTER = "retry-after-ms"
# Refusals awaiting their replay, per model: a bound, so that a flood of refusals cannot grow memory.
MAX_REPLAYED = 256
# Deviations of margin: a request is admitted when its predicted time plus MARGIN x the mean absolute error
# fits (for normal errors, two mean absolute errors are 1.6 sigma). On the tuning seed at 8 phones, 1.0 left
# 4 % of admitted requests late and refused 8 % that would fit; 2.5, 0 % and 20 %: the middle.
MARGIN = 2.0


@dataclass(frozen=True)
class Load:
    """What a request of one model arriving now can expect (the wire's `ServerLoad`)."""

    predicted_wait_ms: float
    queue_length: int
    service_ms: float

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """As gRPC trailing metadata, for a unary refusal (which has no response message to carry it)."""
        return (
            ("offload-predicted-wait-ms", f"{self.predicted_wait_ms:.1f}"),
            ("offload-queue-length", str(self.queue_length)),
        )


@dataclass(frozen=True)
class Ticket:
    """A place in a model's queue, held by a client (its id, "" when unknown) until `release`.

    `order` numbers the admissions (it is not part of the place: a client's places are one key)."""

    model: str
    client: str = ""
    order: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Refusal:
    """A request refused for its deadline, until the requests that were ahead of it have left the queue."""

    behind: int  # the last admission ahead of it (`Ticket.order`)
    deadline: float  # time.monotonic() by which it had to be answered


class Admission:
    """The admitted requests per model and per client, their predicted wait, and the refusals."""

    def __init__(
        self,
        names: list[str],
        max_queue: int,
        metrics: Metrics | None = None,
        deadlines: bool = True,
        max_per_client: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_queue = max_queue
        self.max_per_client = max_per_client or max_queue
        self.metrics = metrics
        self.deadlines = deadlines
        self.admitted: dict[str, int] = dict.fromkeys(names, 0)
        self.held: dict[Ticket, int] = {}  # places per (model, client)
        self.service_ms: dict[str, float] = {}
        self.gap_ms: dict[str, float] = {}
        self.deviation_ms: dict[str, float] = {}
        self.predicted: dict[int, tuple[float, float]] = {}  # admission → (when, predicted ms in the server)
        self.orders = 0
        self.queued: dict[str, set[int]] = {name: set() for name in names}  # the admissions not yet released
        self.replayed: dict[str, list[Refusal]] = {name: [] for name in names}
        self.would_fit: dict[str, int] = dict.fromkeys(names, 0)  # refusals whose replay ended in time
        self.clock = clock
        self.moved: dict[str, float] = {}  # when the queue last moved: a request left, or one entered it empty

    def load(self, model: str) -> Load:
        """The wait a request of `model` arriving now is predicted to have, and the queue ahead of it."""
        ahead = self.admitted.get(model, 0)
        service = self.service_ms.get(model)
        if service is None:
            return Load(0.0, ahead, 0.0)
        if not ahead:
            return Load(0.0, 0, service)
        gap = self.gap_ms[model]
        gone_by = min(gap, (self.clock() - self.moved[model]) * 1000.0)
        finish = max(service, (ahead + 1) * gap - gone_by)
        return Load(finish - service, ahead, service)

    def fair_share(self, model: str) -> int:
        """The most places of `model`'s queue one client may hold now: `max_per_client`, and while other
        clients hold places too, no more than an equal share of what is queued (at least one).

        Max-min fairness on the queue's places: with deadline-aware admission only a request or two fit
        ahead of a deadline, so a fixed cap never binds, and a phone streaming at 30 fps took every place
        that came free before phones sending a frame a second could ask for one.
        """
        holders = sum(1 for t in self.held if t.model == model)
        if holders < 2:
            return self.max_per_client
        return min(self.max_per_client, max(1, -(-self.admitted.get(model, 0) // holders)))

    def admit(self, model: str, budget_ms: float | None, client: str = "") -> Ticket:
        """Take a place in `model`'s queue for `client`, or raise RESOURCE_EXHAUSTED (with the load and a
        retry hint).

        `budget_ms`: the request's time left (None: no deadline). Called on the event loop: no lock needed.
        """
        load, ticket = self.load(model), Ticket(model, client)
        if load.queue_length >= self.max_queue:
            self._refuse(model, "queue_full", load, load.service_ms,
                         f"model {model!r} has {load.queue_length} requests queued (limit {self.max_queue}); "
                         "retry later or run the frame locally")  # fmt: skip
        mine = self.held.get(ticket, 0)
        if client and mine >= self.fair_share(model):
            self._refuse(model, "client_share", load, load.service_ms,
                         f"this client has {mine} of the {load.queue_length} requests of model {model!r} queued "
                         f"(the share per client now: {self.fair_share(model)}, so that others get their turn); "
                         "run the frame locally or wait for an answer")  # fmt: skip
        finish = load.predicted_wait_ms + load.service_ms
        late = finish + MARGIN * self.deviation_ms.get(model, 0.0)  # the prediction, if it runs long
        # Only a wait is refused: with nobody ahead, refusing cannot help the request, and the estimate
        # would never be corrected (a slow first request after a restart then refused every later one).
        if self.deadlines and budget_ms is not None and load.queue_length and late > budget_ms:
            self._replay_later(model, budget_ms)
            self._refuse(model, "deadline", load, late - budget_ms,
                         f"model {model!r} would answer in ~{finish:.0f} ms, up to ~{late:.0f} ms "
                         f"({load.queue_length} requests ahead), past the request's deadline in {budget_ms:.0f} ms; "
                         "run the frame locally or retry later")  # fmt: skip
        if not self.admitted.get(model):
            self.moved[model] = self.clock()
        self.admitted[model] = self.admitted.get(model, 0) + 1
        if client:
            self.held[ticket] = self.held.get(ticket, 0) + 1
        self.orders += 1
        self.queued.setdefault(model, set()).add(self.orders)
        if load.service_ms:
            self.predicted[self.orders] = (self.clock(), finish)
        return Ticket(model, client, self.orders)

    def release(self, ticket: Ticket, service_ms: float | None) -> None:
        """An admitted request is done; `service_ms` is what it took once it ran (None: it did not)."""
        model, now = ticket.model, self.clock()
        since_moved_ms = (now - self.moved[model]) * 1000.0
        self.admitted[model] -= 1
        self.moved[model] = now
        if ticket.client:
            self.held[ticket] -= 1
            if not self.held[ticket]:
                del self.held[ticket]  # clients come and go: keep only those with requests queued
        if service_ms is not None:
            previous = self.service_ms.get(model)
            self.service_ms[model] = service_ms if previous is None else previous + ALPHA * (service_ms - previous)
            # The time since the queue last moved is one gap: since the last departure, or since this
            # request entered an empty queue (idle time is never counted).
            gap = self.gap_ms.get(model)
            self.gap_ms[model] = service_ms if gap is None else gap + ALPHA * (since_moved_ms - gap)
        predicted = self.predicted.pop(ticket.order, None)
        if service_ms is not None and predicted is not None:
            error = abs((now - predicted[0]) * 1000.0 - predicted[1])
            deviation = self.deviation_ms.get(model, error)
            self.deviation_ms[model] = deviation + ALPHA * (error - deviation)
        self.queued.get(model, set()).discard(ticket.order)
        self._replay(model)

    def _replay_later(self, model: str, budget_ms: float) -> None:
        waiting = self.replayed.setdefault(model, [])
        if len(waiting) < MAX_REPLAYED and self.queued.get(model):
            waiting.append(Refusal(max(self.queued[model]), self.clock() + budget_ms / 1000.0))

    def _replay(self, model: str) -> None:
        """Judge the refusals whose requests ahead have all left the queue: would one have ended in time?"""
        waiting = self.replayed.get(model)
        if not waiting:
            return
        first_queued = min(self.queued[model], default=self.orders + 1)
        now, service_s = self.clock(), self.service_ms.get(model, 0.0) / 1000.0
        idle = not self.queued[model]  # the server would have had nothing else to do: one place free
        for refusal in [r for r in waiting if r.behind < first_queued]:
            waiting.remove(refusal)
            if idle and now + service_s <= refusal.deadline:
                idle = False
                self.would_fit[model] = self.would_fit.get(model, 0) + 1
                if self.metrics is not None:
                    self.metrics.refused_would_fit.labels(model=model).inc()

    def _refuse(self, model: str, reason: str, load: Load, retry_after_ms: float, message: str) -> None:
        if self.metrics is not None:
            self.metrics.refused_at_arrival.labels(model=model, reason=reason).inc()
        trailers = ((RETRY_AFTER, str(max(1, round(retry_after_ms)))), *load.trailers())
        raise ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, trailers=trailers, load=load)
