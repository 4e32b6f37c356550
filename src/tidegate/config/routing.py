"""The ``routing:`` section: tiers, scorer, retries, breakers, fallbacks, cascade, degraded answer.

Structs only describe what the file may say; :func:`validate_routing` checks what needs the whole
config (a tier naming a model that does not exist, a fallback to an unknown target, thresholds that
do not increase). The router compiles these into its runtime objects once, at build time.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from .types import ConfigStruct, Duration

if TYPE_CHECKING:
    from .schema import TidegateConfig

__all__ = [
    "BackoffConfig",
    "BalanceKind",
    "BreakerConfig",
    "CascadeCheck",
    "CascadeConfig",
    "DegradedConfig",
    "RetryConfig",
    "RoutingConfig",
    "ScorerConfig",
    "TierConfig",
    "TierWhen",
    "validate_routing",
]

BalanceKind = Literal["weighted", "least-in-flight", "least-latency", "round-robin"]
CascadeCheck = Literal["empty", "refusal", "json_schema", "length"]

AUTO_MODEL = "auto"
"""The model name that asks the scorer to pick a tier."""


class TierWhen(ConfigStruct):
    score_below: float | None = None
    """This tier takes requests whose complexity score is below this value (first match wins)."""


class TierConfig(ConfigStruct):
    """A named group of interchangeable deployments (keys of ``models``)."""

    name: str
    models: list[str]
    when: TierWhen | None = None
    balance: BalanceKind = "weighted"


class ScorerConfig(ConfigStruct):
    """The complexity scorer: rule weights by signal name, and an optional learned head."""

    weights: dict[str, float] = msgspec.field(default_factory=dict)
    """Overrides of the built-in signal weights (see ``tidegate.routing.scorer.DEFAULT_WEIGHTS``)."""
    head: str | None = None
    """A head file written by ``Head.save`` (``.npz``): kNN or logistic over prompt embeddings."""
    head_weight: float = 0.5
    """Share of the head's probability in the final score when an embedding is available."""


class BackoffConfig(ConfigStruct):
    min: Duration = Duration(0.1)
    max: Duration = Duration(2.0)


class RetryConfig(ConfigStruct):
    """Retries within one target (tier or model), before moving to its fallbacks.

    ``attempts`` counts every try, the first included, so ``attempts: 1`` means no retry.
    """

    attempts: int = 3
    on_status: list[int] = msgspec.field(default_factory=lambda: [408, 429, 500, 502, 503, 504])
    on_connection_error: bool = True
    backoff: BackoffConfig = msgspec.field(default_factory=BackoffConfig)
    attempt_timeout: Duration | None = None
    """Bound on one upstream try (to the first chunk for streams); the model's ``timeout`` still holds."""
    deadline: Duration = Duration(60.0)
    """Bound on the whole route: every try, backoff and fallback together."""
    max_retry_after: Duration = Duration(30.0)
    """A Retry-After longer than this takes the deployment out instead of waiting for it."""


class BreakerConfig(ConfigStruct):
    """Per-deployment circuit breaker over a rolling window.

    Trips when, within ``window``, at least ``min_volume`` calls were seen and either ``failures``
    of them failed or their failure share reached ``failure_ratio`` (the first one set wins; when
    neither is set a ratio of 0.5 is used).
    """

    failures: int | None = None
    failure_ratio: float | None = None
    min_volume: int = 5
    window: Duration = Duration(30.0)
    cooldown: Duration = Duration(15.0)
    half_open_probes: int = 1


class CascadeConfig(ConfigStruct):
    """Answer with tier ``from`` first and escalate to ``to`` when a check fails."""

    from_: str = msgspec.field(name="from")
    to: str
    checks: list[CascadeCheck] = msgspec.field(
        default_factory=lambda: ["empty", "refusal", "json_schema", "length"]
    )
    refusal_patterns: list[str] = msgspec.field(default_factory=list)
    """Extra regular expressions (case-insensitive) that count as a refusal."""


class DegradedConfig(ConfigStruct):
    text: str = (
        "Sorry, our assistant is temporarily unavailable. Please try again in a few minutes."
    )
    enabled: bool = True


class RoutingConfig(ConfigStruct):
    tiers: list[TierConfig] = msgspec.field(default_factory=list)
    scorer: ScorerConfig = msgspec.field(default_factory=ScorerConfig)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    cascade: list[CascadeConfig] = msgspec.field(default_factory=list)
    degraded: DegradedConfig | None = None
    tier_header: str = "x-tidegate-tier"
    """Request header that overrides the scorer's tier choice (the body's ``tier`` field also does)."""


def validate_routing(cfg: RoutingConfig, root: TidegateConfig) -> list[str]:
    """Every cross-reference and numeric invariant of the routing section, collected."""
    issues: list[str] = []
    models = root.models
    known_models = ", ".join(f"`{m}`" for m in sorted(models)) or "none configured"
    tier_names: dict[str, int] = {}
    for index, tier in enumerate(cfg.tiers):
        at = f"$.routing.tiers[{index}]"
        if tier.name in tier_names:
            issues.append(f"Expected unique tier names, got `{tier.name}` twice - at `{at}.name`")
        tier_names.setdefault(tier.name, index)
        if tier.name == AUTO_MODEL:
            issues.append(
                f"Expected a tier name other than `auto` (reserved), got `auto` - at `{at}.name`"
            )
        if not tier.models:
            issues.append(f"Expected at least one model, got `[]` - at `{at}.models`")
        for position, model in enumerate(tier.models):
            if model not in models:
                issues.append(
                    f"Expected a model defined under `models` ({known_models}), got `{model}`"
                    f" - at `{at}.models[{position}]`"
                )
            elif models[model].kind != "chat":
                issues.append(
                    f"Expected a chat model, got embeddings model `{model}` - at `{at}.models[{position}]`"
                )
        if tier.name in models and tier.models != [tier.name]:
            issues.append(
                f"Expected tier `{tier.name}` not to shadow the model of the same name unless it"
                f" holds only that model, got `{tier.models}` - at `{at}.name`"
            )
    issues.extend(_check_thresholds(cfg))
    targets = set(tier_names) | set(models)
    known_targets = ", ".join(f"`{t}`" for t in sorted(targets)) or "none configured"
    for source, chain in cfg.fallbacks.items():
        at = f"$.routing.fallbacks.{source}"
        if source not in targets:
            issues.append(f"Expected a tier or model ({known_targets}), got `{source}` - at `{at}`")
        for position, target in enumerate(chain):
            if target not in targets:
                issues.append(
                    f"Expected a tier or model ({known_targets}), got `{target}` - at `{at}[{position}]`"
                )
            elif target == source:
                issues.append(
                    f"Expected a fallback other than itself, got `{target}` - at `{at}[{position}]`"
                )
    for index, cascade in enumerate(cfg.cascade):
        at = f"$.routing.cascade[{index}]"
        for key, name in (("from", cascade.from_), ("to", cascade.to)):
            if name not in targets:
                issues.append(
                    f"Expected a tier or model ({known_targets}), got `{name}` - at `{at}.{key}`"
                )
        if cascade.from_ == cascade.to:
            issues.append(f"Expected `to` to differ from `from`, got `{cascade.to}` - at `{at}.to`")
        for position, pattern in enumerate(cascade.refusal_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                issues.append(
                    f"Expected a regular expression, got `{pattern}` ({exc}) - at"
                    f" `{at}.refusal_patterns[{position}]`"
                )
    issues.extend(_check_numbers(cfg))
    if cfg.scorer.head is not None:
        head = resolve_path(cfg.scorer.head, root)
        if not head.is_file():
            issues.append(
                f"Expected a head file (`.npz` written by `Head.save`), got `{cfg.scorer.head}`"
                f" (no file at {head}) - at `$.routing.scorer.head`"
            )
    return issues


def resolve_path(path: str, root: TidegateConfig) -> Path:
    """Relative paths in a config resolve against the config file's folder."""
    candidate = Path(path)
    if candidate.is_absolute() or root.source is None:
        return candidate
    return Path(root.source).parent / candidate


def _check_thresholds(cfg: RoutingConfig) -> list[str]:
    issues: list[str] = []
    previous = -math.inf
    for index, tier in enumerate(cfg.tiers):
        below = tier.when.score_below if tier.when else None
        if below is None:
            continue
        at = f"$.routing.tiers[{index}].when.score_below"
        if not 0.0 <= below <= 1.0:
            issues.append(f"Expected a score in [0, 1], got `{below}` - at `{at}`")
        elif below <= previous:
            issues.append(
                f"Expected thresholds increasing down the tier list, got `{below}` after"
                f" `{previous}` - at `{at}`"
            )
        previous = below
    return issues


def _check_numbers(cfg: RoutingConfig) -> list[str]:
    issues: list[str] = []
    retry, breaker, scorer = cfg.retry, cfg.breaker, cfg.scorer
    if retry.attempts < 1:
        issues.append(
            f"Expected `int` >= 1, got `{retry.attempts}` - at `$.routing.retry.attempts`"
        )
    for position, status in enumerate(retry.on_status):
        if not 400 <= status <= 599:
            issues.append(
                f"Expected an HTTP error status (400-599), got `{status}` - at"
                f" `$.routing.retry.on_status[{position}]`"
            )
    if retry.backoff.min > retry.backoff.max:
        issues.append(
            f"Expected backoff min <= max, got min `{retry.backoff.min:g}s` > max"
            f" `{retry.backoff.max:g}s` - at `$.routing.retry.backoff`"
        )
    if retry.deadline <= 0:
        issues.append(
            f"Expected a duration > 0, got `{retry.deadline:g}s` - at `$.routing.retry.deadline`"
        )
    if retry.attempt_timeout is not None and retry.attempt_timeout <= 0:
        issues.append(
            f"Expected a duration > 0, got `{retry.attempt_timeout:g}s` - at"
            " `$.routing.retry.attempt_timeout`"
        )
    if breaker.failures is not None and breaker.failures < 1:
        issues.append(
            f"Expected `int` >= 1, got `{breaker.failures}` - at `$.routing.breaker.failures`"
        )
    if breaker.failure_ratio is not None and not 0.0 < breaker.failure_ratio <= 1.0:
        issues.append(
            f"Expected a ratio in (0, 1], got `{breaker.failure_ratio}` - at"
            " `$.routing.breaker.failure_ratio`"
        )
    if breaker.min_volume < 1:
        issues.append(
            f"Expected `int` >= 1, got `{breaker.min_volume}` - at `$.routing.breaker.min_volume`"
        )
    if breaker.half_open_probes < 1:
        issues.append(
            f"Expected `int` >= 1, got `{breaker.half_open_probes}` - at"
            " `$.routing.breaker.half_open_probes`"
        )
    if breaker.window <= 0:
        issues.append(
            f"Expected a duration > 0, got `{breaker.window:g}s` - at `$.routing.breaker.window`"
        )
    if not 0.0 <= scorer.head_weight <= 1.0:
        issues.append(
            f"Expected a weight in [0, 1], got `{scorer.head_weight}` - at `$.routing.scorer.head_weight`"
        )
    from ..routing.scorer import DEFAULT_WEIGHTS

    for name in scorer.weights:
        if name not in DEFAULT_WEIGHTS:
            known = ", ".join(f"`{k}`" for k in sorted(DEFAULT_WEIGHTS))
            issues.append(
                f"Expected a signal name ({known}), got `{name}` - at `$.routing.scorer.weights`"
            )
    return issues
