"""Prometheus metrics owned by one Gateway.

A registry per Gateway (never prometheus-client's global one) so two gateways in one process, or
a test run after another, never share counters. Capabilities register their own collectors on
``Metrics.registry``; the families here are the ones every surface request touches.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["CONTENT_TYPE_LATEST", "Children", "Metrics"]


class Children:
    """A labelled family's children, each resolved once: ``labels()`` validates its arguments and
    takes a lock on every call (~3 µs), which adds up on a path taken several times a request.
    Use it for label values from a fixed set (reasons, tiers), never for unbounded ones."""

    __slots__ = ("_family", "_resolved")

    def __init__(self, family: MetricWrapperBase) -> None:
        self._family = family
        self._resolved: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._resolved.get(values)
        if child is None:
            child = self._resolved[values] = self._family.labels(*values)
        return child


class Metrics:
    def __init__(self, *, buckets: list[float] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        latency_buckets = buckets or list(Histogram.DEFAULT_BUCKETS)
        self.requests = Counter(
            "tidegate_requests", "Surface requests by surface, endpoint and status.",
            ["surface", "endpoint", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tidegate_request_duration_seconds", "Surface request latency (to last byte).",
            ["surface", "endpoint"], registry=registry, buckets=latency_buckets,
        )  # fmt: skip
        self.overhead = Histogram(
            "tidegate_overhead_seconds", "Time tidegate itself added (total minus upstream time).",
            ["surface"], registry=self.registry,
            buckets=[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1],
        )  # fmt: skip
        self.upstream_latency = Histogram(
            "tidegate_upstream_duration_seconds", "Upstream call latency by model and outcome.",
            ["model", "outcome"], registry=registry, buckets=latency_buckets,
        )  # fmt: skip
        self.errors = Counter(
            "tidegate_errors", "Errors by kind (our error code) and surface.",
            ["surface", "kind"], registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "tidegate_in_flight_requests", "Surface requests being served now.", ["surface"], registry=registry
        )
        self.tokens = Counter(
            "tidegate_tokens", "Tokens reported by upstreams, by model and kind (prompt/completion).",
            ["model", "kind"], registry=registry,
        )  # fmt: skip

        self.upstream_call = Children(self.upstream_latency)
        self.token = Children(self.tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
