"""Per-route cache policy (TTL, threshold, on/off) and per-embedder calibrated thresholds.

The thresholds below were chosen on ``examples/cache_pairs/pairs.jsonl`` (577 labeled pairs:
paraphrases and near-repeats that should hit; negation, entity, number, date, scope, rephrased
and multi-turn traps that must not) together with the trap guard: the lowest cosine that keeps
traps served under 1 % on both halves of the set. Re-run
``python tests/bench/bench_cache.py --quality`` to see the rates for each embedder.
"""

from __future__ import annotations

from ..config.cache import CacheConfig
from ..embeddings.base import Embedder

__all__ = ["FALLBACK_THRESHOLD", "THRESHOLDS", "Policies", "RoutePolicy", "default_threshold"]

THRESHOLDS: dict[str, float] = {
    "local:all-MiniLM-L6-v2": 0.74,
    "local:use-multilingual-v3": 0.76,
    "local:multilingual-e5-small": 0.92,
    "hash": 0.60,
}
"""Keyed by the embedder's ``model_id`` (``hash`` matches every ``hash:<dim>``)."""

FALLBACK_THRESHOLD = 0.90
"""For embedders we have not calibrated: strict, the guard does the rest."""


def default_threshold(embedder: Embedder) -> float:
    model_id = embedder.model_id
    found = THRESHOLDS.get(model_id) or THRESHOLDS.get(model_id.split(":", 1)[0])
    return found if found is not None else FALLBACK_THRESHOLD


class RoutePolicy:
    """What the config says for one route, resolved once and kept."""

    __slots__ = ("enabled", "exact_ttl", "semantic_ttl", "threshold")

    def __init__(self, *, enabled: bool, exact_ttl: float, semantic_ttl: float, threshold: float) -> None:
        self.enabled = enabled
        self.exact_ttl = exact_ttl
        self.semantic_ttl = semantic_ttl
        self.threshold = threshold


class Policies:
    def __init__(self, config: CacheConfig, default_threshold: float) -> None:
        self._config = config
        base = config.semantic.threshold if config.semantic.threshold is not None else default_threshold
        self.default = RoutePolicy(
            enabled=True, exact_ttl=float(config.exact.ttl),
            semantic_ttl=float(config.semantic.ttl), threshold=base,
        )  # fmt: skip
        self._routes: dict[str, RoutePolicy] = {}
        for name, route in config.routes.items():
            ttl = float(route.ttl) if route.ttl is not None else None
            self._routes[name] = RoutePolicy(
                enabled=route.enabled,
                exact_ttl=ttl if ttl is not None else self.default.exact_ttl,
                semantic_ttl=ttl if ttl is not None else self.default.semantic_ttl,
                threshold=route.threshold if route.threshold is not None else base,
            )

    def __call__(self, route: str) -> RoutePolicy:
        return self._routes.get(route, self.default)
