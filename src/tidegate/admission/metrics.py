"""Prometheus metrics of admission, registered on the registry the Gateway owns.

Label children are bound once per rule at construction (``.labels()`` costs a dict lookup and a
lock per call), so the request path only calls ``inc``/``dec``/``observe`` on ready objects.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .gate import GateObserver

__all__ = ["AdmissionMetrics", "RuleMetrics"]

QUEUE_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class AdmissionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.admitted = Counter(
            "tidegate_admission_admitted",
            "Requests admitted, by each rule that applied to them.",
            ["rule"],
            registry=registry,
        )
        self.limited = Counter(
            "tidegate_admission_limited",
            "Requests refused with 429 by a rate or token limit.",
            ["rule", "kind"],
            registry=registry,
        )
        self.shed = Counter(
            "tidegate_admission_shed",
            "Requests shed with 503 by a concurrency cap (queue_full, deadline, timeout, closed).",
            ["rule", "reason"],
            registry=registry,
        )
        self.queue_length = Gauge(
            "tidegate_admission_queue_length",
            "Requests waiting for a concurrency slot.",
            ["rule"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "tidegate_admission_queue_wait_seconds",
            "Time spent waiting for a concurrency slot (queued requests only).",
            ["rule"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tidegate_admission_in_flight",
            "Requests holding a concurrency slot.",
            ["rule"],
            registry=registry,
        )
        self.concurrency_limit = Gauge(
            "tidegate_admission_concurrency_limit",
            "Current concurrency limit of adaptive (`concurrency: auto`) rules.",
            ["rule"],
            registry=registry,
        )
        self.storage_errors = Counter(
            "tidegate_admission_storage_errors",
            "Failed calls to the shared limit storage (admitted when fail_open).",
            registry=registry,
        )

    def rule(self, label: str) -> RuleMetrics:
        return RuleMetrics(self, label)


class RuleMetrics(GateObserver):
    """The bound children of one rule; also the observer of the rule's gates."""

    def __init__(self, metrics: AdmissionMetrics, label: str) -> None:
        self.label = label
        self.admitted = metrics.admitted.labels(rule=label)
        self._limited = metrics.limited
        self._shed = metrics.shed
        self._queue = metrics.queue_length.labels(rule=label)
        self._wait = metrics.queue_wait.labels(rule=label)
        self._inflight = metrics.in_flight.labels(rule=label)
        self._limit = metrics.concurrency_limit.labels(rule=label)

    def limited(self, kind: str) -> None:
        self._limited.labels(rule=self.label, kind=kind).inc()

    def shed(self, reason: str) -> None:
        self._shed.labels(rule=self.label, reason=reason).inc()

    def queued(self, delta: int) -> None:
        self._queue.inc(delta)

    def inflight(self, delta: int) -> None:
        self._inflight.inc(delta)

    def waited(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def limit(self, value: int) -> None:
        self._limit.set(value)
