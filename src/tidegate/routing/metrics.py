"""Prometheus families of the router, registered on the Gateway's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..metrics import Children

__all__ = ["RoutingMetrics"]

BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.requests = Counter(
            "tidegate_route_requests", "Routed requests by answering tier, model and outcome"
            " (ok, fallback, escalated, degraded, error).",
            ["tier", "model", "outcome"], registry=registry,
        )  # fmt: skip
        self.attempts = Counter(
            "tidegate_route_attempts", "Upstream calls by deployment and outcome (ok, status, timeout, error).",
            ["model", "outcome"], registry=registry,
        )  # fmt: skip
        self.cost = Counter(
            "tidegate_route_cost", "Cost of answered requests from per-model prices, by tenant, tier and model.",
            ["tenant", "tier", "model"], registry=registry,
        )  # fmt: skip
        self.score = Histogram(
            "tidegate_route_score", "Complexity scores of requests routed with `model: auto`.",
            registry=registry, buckets=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        )  # fmt: skip
        self.breaker_state = Gauge(
            "tidegate_route_breaker_state", "Circuit breaker state per deployment (0 closed, 1 half-open, 2 open).",
            ["model"], registry=registry,
        )  # fmt: skip
        self.breaker_transitions = Counter(
            "tidegate_route_breaker_transitions", "Breaker state changes per deployment, by new state.",
            ["model", "state"], registry=registry,
        )  # fmt: skip
        self.escalations = Counter(
            "tidegate_route_escalations", "Cascade escalations by source tier, target tier and failed check.",
            ["source", "target", "check"], registry=registry,
        )  # fmt: skip
        self.degraded = Counter(
            "tidegate_route_degraded", "Requests answered with the degraded last-resort text.",
            registry=registry,
        )  # fmt: skip

        # Per-call families, each child resolved once (see tidegate.metrics.Children).
        self.request = Children(self.requests)
        self.attempt = Children(self.attempts)
        self.spent = Children(self.cost)

    def breaker_changed(self, model: str, state: str) -> None:
        self.breaker_state.labels(model).set(BREAKER_STATES.get(state, 0))
        self.breaker_transitions.labels(model, state).inc()
