"""Config of the response cache (``cache:``): exact and semantic tiers, per-route overrides, prewarm.

Thresholds are optional on purpose: cosine scales differ per embedding model (e5 sits near 1,
MiniLM spreads out), so the default comes from a table calibrated per embedder on our labeled
pair set (``examples/cache_pairs``) instead of one global number that suits no model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .types import ByteSize, ConfigStruct, Duration

__all__ = [
    "CacheConfig",
    "ExactCacheConfig",
    "RouteCacheConfig",
    "SemanticCacheConfig",
    "validate_cache",
]

_Count = Annotated[int, msgspec.Meta(ge=1)]


class ExactCacheConfig(ConfigStruct):
    """Byte-identical requests (after canonicalization) within one scope."""

    ttl: Duration = Duration(600.0)
    max_entries: _Count = 100_000


class SemanticCacheConfig(ConfigStruct):
    """Equivalent questions within one scope and conversation, found by embedding similarity.

    ``max_temperature`` applies to every tier, not only this one: a "regenerate" button resends
    the identical request at a high temperature and expects a new sample. Above it a request is
    neither served from nor stored in the cache unless ``cache_high_temperature`` is set.
    """

    enabled: bool = True
    ttl: Duration = Duration(3600.0)
    threshold: float | None = None
    """Minimum cosine for a hit; by default calibrated per embedder (see ``cache.thresholds``)."""
    embedder: str = "default"
    max_entries: _Count = 200_000
    max_temperature: float = 1.0
    cache_high_temperature: bool = False
    dtype: Literal["f32", "f16", "i8"] = "f32"
    """Storage type of vectors in large (HNSW) partitions; i8 is ~3.4x smaller, less exact."""
    exact_below: Annotated[int, msgspec.Meta(ge=1)] = 8192
    """Partitions smaller than this are searched exactly (a scan of int8 codes, re-scored in
    float32) instead of an HNSW graph: up to ~8k vectors the scan costs less than a graph
    search plus the graph insert every stored miss needs."""
    guard: bool = True
    """Refuse hits whose questions differ in numbers, dates, negation, names or object."""


class RouteCacheConfig(ConfigStruct):
    """Overrides for one route: a model name, tier or workflow as the request names it."""

    enabled: bool = True
    ttl: Duration | None = None
    """Replaces both tiers' TTL for this route."""
    threshold: float | None = None


class CacheConfig(ConfigStruct):
    enabled: bool = True
    exact: ExactCacheConfig = msgspec.field(default_factory=ExactCacheConfig)
    semantic: SemanticCacheConfig = msgspec.field(default_factory=SemanticCacheConfig)
    routes: dict[str, RouteCacheConfig] = msgspec.field(default_factory=dict)
    prewarm: str | None = None
    """A JSONL, YAML or JSON file of curated question → answer pairs loaded at start."""
    tenant_header: str | None = None
    """Header naming the tenant when the request has none from its API key."""
    max_entry_size: ByteSize = ByteSize(256 * 1024)
    """Responses larger than this (encoded) are served but not stored."""
    sweep_interval: Duration = Duration(30.0)
    """How often expired entries are removed from the indexes (lookups also check lazily)."""


def validate_cache(cfg: CacheConfig | None, root: Any = None) -> list[str]:
    """Every numeric invariant and cross reference of ``cache:``, collected."""
    if cfg is None:
        return []
    issues: list[str] = []
    if cfg.exact.ttl <= 0:
        issues.append(f"Expected a duration > 0, got `{float(cfg.exact.ttl)}s` - at `$.cache.exact.ttl`")
    sem = cfg.semantic
    if sem.ttl <= 0:
        issues.append(f"Expected a duration > 0, got `{float(sem.ttl)}s` - at `$.cache.semantic.ttl`")
    issues.extend(_threshold(sem.threshold, "$.cache.semantic.threshold"))
    if not 0.0 <= sem.max_temperature <= 2.0:
        issues.append(
            f"Expected `max_temperature` in [0, 2], got `{sem.max_temperature}`"
            " - at `$.cache.semantic.max_temperature`"
        )
    embeddings = getattr(root, "embeddings", None)
    if sem.enabled and isinstance(embeddings, dict):
        if sem.embedder not in embeddings and not (sem.embedder == "default" and not embeddings):
            known = ", ".join(f"`{name}`" for name in embeddings) or "none configured"
            issues.append(
                f"Expected an embedder defined under `embeddings` ({known}), got `{sem.embedder}`"
                " - at `$.cache.semantic.embedder`"
            )
    for name, route in cfg.routes.items():
        at = f"$.cache.routes.{name}"
        if route.ttl is not None and route.ttl <= 0:
            issues.append(f"Expected a duration > 0, got `{float(route.ttl)}s` - at `{at}.ttl`")
        issues.extend(_threshold(route.threshold, f"{at}.threshold"))
    if cfg.tenant_header is not None and not cfg.tenant_header.strip():
        issues.append("Expected a header name, got an empty string - at `$.cache.tenant_header`")
    if cfg.prewarm is not None and not cfg.prewarm.strip():
        issues.append("Expected a file path, got an empty string - at `$.cache.prewarm`")
    if cfg.sweep_interval <= 0:
        issues.append(
            f"Expected a duration > 0, got `{float(cfg.sweep_interval)}s` - at `$.cache.sweep_interval`"
        )
    return issues


def _threshold(value: float | None, at: str) -> list[str]:
    if value is not None and not 0.0 < value <= 1.0:
        return [f"Expected a cosine threshold in (0, 1], got `{value}` - at `{at}`"]
    return []
