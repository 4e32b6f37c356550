"""The exact tier: canonical request digest → entry, bounded by count, expiring per entry.

A ``TLRUCache`` rather than a ``TTLCache`` because routes may carry their own TTL; each entry's
``expires`` is its time-to-use. Evictions (LRU and TTL) are reported so metrics and byte counts
stay exact. Not thread-safe: used from the event loop only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache

from .entry import Entry

__all__ = ["ExactStore"]

Evicted = Callable[[str, Entry], None]


def _ttu(_key: Any, entry: Entry, _now: float) -> float:
    return entry.expires


class _Cache(TLRUCache[bytes, Entry]):
    def __init__(self, maxsize: int, timer: Callable[[], float], evicted: Evicted) -> None:
        super().__init__(maxsize, _ttu, timer=timer)
        self._evicted = evicted

    def expire(self, time: float | None = None) -> list[tuple[bytes, Entry]]:
        expired = super().expire(time)
        for _, entry in expired:
            self._evicted("ttl", entry)
        return expired

    def popitem(self) -> tuple[bytes, Entry]:
        key, entry = super().popitem()
        self._evicted("lru", entry)
        return key, entry


class ExactStore:
    """Bounded TTL map from exact keys to entries; ``bytes`` tracks what the entries hold."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float], evicted: Evicted | None = None) -> None:
        self._clock = clock
        self._on_evicted = evicted
        self._cache = _Cache(max_entries, clock, self._evict)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._cache)

    def _evict(self, reason: str, entry: Entry) -> None:
        self.bytes -= entry.size
        if self._on_evicted is not None:
            self._on_evicted(reason, entry)

    def get(self, key: bytes) -> Entry | None:
        return self._cache.get(key)

    def put(self, key: bytes, entry: Entry) -> None:
        if entry.expires <= self._clock():
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._cache[key] = entry
        self.bytes += entry.size

    def discard(self, key: bytes) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self.bytes -= old.size

    def sweep(self) -> int:
        """Drop expired entries now (lookups already ignore them); returns how many."""
        return len(self._cache.expire())

    def clear(self) -> None:
        self._cache.clear()
        self.bytes = 0
