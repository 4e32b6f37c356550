"""Compiling the ``routing:`` section into the router's runtime parts, once, at construction.

Kept out of the router so its module reads as the request path only; everything here runs when a
Gateway is built (or rebuilt on reload), never per request.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from ..config.routing import BreakerConfig, RetryConfig, RoutingConfig
from .balancer import make_balancer
from .breaker import CircuitBreaker
from .cascade import CascadeRule
from .deployment import Deployment
from .metrics import RoutingMetrics
from .retry import RetryPolicy
from .tiers import RoutingTable, Target

__all__ = ["build_cascades", "build_deployment", "build_table", "retry_policy"]


def build_deployment(
    name: str,
    upstream: Any,
    breaker: BreakerConfig,
    metrics: RoutingMetrics,
    clock: Callable[[], float],
) -> Deployment:
    """A deployment for ``upstream`` (caps, quotas and prices come from its ``ModelConfig``)."""
    cfg = upstream.config

    def changed(_old: str, new: str) -> None:
        metrics.breaker_changed(name, new)

    circuit = CircuitBreaker(
        failures=breaker.failures,
        failure_ratio=breaker.failure_ratio,
        min_volume=breaker.min_volume,
        window=float(breaker.window),
        cooldown=float(breaker.cooldown),
        half_open_probes=breaker.half_open_probes,
        clock=clock,
        on_change=changed,
    )
    metrics.breaker_state.labels(name).set(0)
    return Deployment(
        name, upstream, breaker=circuit, weight=cfg.weight, max_concurrency=cfg.max_concurrency,
        rpm=cfg.rpm, tpm=cfg.tpm, input_price=cfg.input_price, output_price=cfg.output_price,
        clock=clock,
    )  # fmt: skip


def build_table(
    config: RoutingConfig, deployments: Mapping[str, Deployment], rng: random.Random
) -> RoutingTable:
    tiers = [
        (
            Target(
                tier.name,
                [deployments[m] for m in tier.models if m in deployments],
                make_balancer(tier.balance, rng),
            ),
            tier.when.score_below if tier.when else None,
        )
        for tier in config.tiers
    ]
    return RoutingTable(tiers, deployments, config.fallbacks)


def build_cascades(config: RoutingConfig) -> dict[str, CascadeRule]:
    return {
        rule.from_: CascadeRule(
            rule.from_, rule.to, rule.checks, refusal_patterns=rule.refusal_patterns
        )
        for rule in config.cascade
    }


def retry_policy(retry: RetryConfig, rng: random.Random) -> RetryPolicy:
    return RetryPolicy(
        attempts=retry.attempts, on_status=set(retry.on_status),
        on_connection_error=retry.on_connection_error, backoff_min=float(retry.backoff.min),
        backoff_max=float(retry.backoff.max),
        attempt_timeout=float(retry.attempt_timeout) if retry.attempt_timeout is not None else None,
        deadline=float(retry.deadline), max_retry_after=float(retry.max_retry_after), rng=rng,
    )  # fmt: skip
