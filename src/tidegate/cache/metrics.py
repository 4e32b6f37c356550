"""Prometheus families of one response cache, registered on the registry it is given.

Each family is used through :class:`~tidegate.metrics.Children` (``metrics.hit("exact").inc()``),
so a request resolves no labels; entry counts and bytes are read when scraped, not per store.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..metrics import Children

__all__ = ["CacheMetrics"]


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.hits = Counter(
            "tidegate_cache_hits", "Answers served from the cache, by tier.", ["kind"], registry=r
        )
        self.misses = Counter(
            "tidegate_cache_misses",
            "Requests forwarded upstream, by why (miss, refresh, stale, no-store, bypass).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.similarity = Histogram(
            "tidegate_cache_similarity",
            "Cosine of the best semantic candidate, by outcome (served, below, refused).",
            ["outcome"], registry=r,
            buckets=[0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0],
        )  # fmt: skip
        self.refusals = Counter(
            "tidegate_cache_guard_refusals",
            "Semantic candidates above threshold refused by the trap guard, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.entries = Gauge("tidegate_cache_entries", "Entries held, by tier.", ["tier"], registry=r)
        self.bytes = Gauge(
            "tidegate_cache_bytes", "Approximate bytes held by entries, by tier.", ["tier"], registry=r
        )
        self.evictions = Counter(
            "tidegate_cache_evictions", "Entries dropped, by tier and reason (lru, ttl).",
            ["tier", "reason"], registry=r,
        )  # fmt: skip
        self.stores = Counter(
            "tidegate_cache_stores", "Answers stored, by shape (completion, stream).", ["shape"], registry=r
        )
        self.skipped = Counter(
            "tidegate_cache_store_skipped",
            "Answers not stored, by reason (error, partial, finish_reason, too_large).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.collapsed = Counter(
            "tidegate_cache_collapsed", "Requests that joined an identical in-flight call.", registry=r
        )
        self.errors = Counter(
            "tidegate_cache_errors",
            "Cache failures that degraded to a miss (e.g. the embedder was down), by stage.",
            ["stage"], registry=r,
        )  # fmt: skip
        self.hit = Children(self.hits)
        self.miss = Children(self.misses)
        self.similar = Children(self.similarity)
        self.refusal = Children(self.refusals)
        self.eviction = Children(self.evictions)
        self.stored = Children(self.stores)
        self.skip = Children(self.skipped)
        self.error = Children(self.errors)

    def watch(self, tier: str, *, entries: Callable[[], float], size: Callable[[], float]) -> None:
        """Report ``tier``'s entry count and bytes from these functions at scrape time."""
        self.entries.labels(tier).set_function(entries)
        self.bytes.labels(tier).set_function(size)
