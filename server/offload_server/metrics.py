"""Prometheus metrics, on a registry of their own so several servers can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_resident_memory_bytes & co.: what an operator (and the overload benchmark) watches.
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "offload_requests",
            "Inference requests by model and gRPC status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "offload_request_latency_seconds",
            "Server-side latency of successful requests.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "offload_stage_seconds",
            "Time per stage: decode, queue, inference, postprocess.",
            ["model", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Triton's pair: frames computed vs model calls made; their ratio is the mean batch size.
        self.inferences = Counter("offload_inference", "Frames computed by a model.", ["model"], registry=self.registry)
        self.executions = Counter(
            "offload_execution", "Model calls (one per batch).", ["model"], registry=self.registry
        )
        self.batch_size = Histogram(
            "offload_batch_size", "Frames per model call.", ["model"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.expired = Counter(
            "offload_expired",
            "Requests dropped uncomputed because their deadline passed in the queue.",
            ["model"],
            registry=self.registry,
        )
        self.refused = Counter(
            "offload_refused",
            "Calls refused for a missing or unknown token, by protocol (none reached a model).",
            ["protocol"],
            registry=self.registry,
        )
        # Refused at arrival, by why: a full queue, or a predicted answer past the request's deadline.
        self.refused_at_arrival = Counter(
            "offload_admission_refused",
            "Requests refused at arrival (RESOURCE_EXHAUSTED), by reason: queue_full or deadline.",
            ["model", "reason"],
            registry=self.registry,
        )
        # A deadline refusal replayed: the requests ahead of it left the queue early enough, and nothing else
        # waited, so it would have been answered in time by a server that sat idle instead. The admission's
        # mistakes in the refusing direction.
        self.refused_would_fit = Counter(
            "offload_refused_would_fit",
            "Requests refused for their deadline that, replayed against the queue as it then drained, would have "
            "been answered in time by a server that sat idle instead.",
            ["model"],
            registry=self.registry,
        )
        # Admitted and answered, but after the request's deadline: work the caller could no longer use.
        self.late = Counter(
            "offload_late_answers", "Requests answered after their deadline.", ["model"], registry=self.registry
        )
        self.in_flight = Gauge("offload_in_flight_requests", "Requests being served now.", registry=self.registry)

    def request_count(self, model: str | None = None) -> float:
        """Total requests seen (for one model, or all): what privacy tests count."""
        total = 0.0
        for metric in self.requests.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and (model is None or sample.labels.get("model") == model):
                    total += sample.value
        return total
