"""Fixtures of the cache tests (helpers live in ``cache/helpers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from cache.helpers import Clock
from tidegate._concurrency import WorkerPool
from tidegate.cache import ResponseCache
from tidegate.config.cache import CacheConfig
from tidegate.config.types import dec_hook
from tidegate.embeddings import HashEmbedder


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(max_workers=2, name="test-cache")
    yield workers
    workers.shutdown(wait=True)


@pytest.fixture
async def embedder(pool: WorkerPool) -> AsyncIterator[HashEmbedder]:
    async with HashEmbedder("default", pool=pool) as emb:
        yield emb


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_cache(pool: WorkerPool, embedder: HashEmbedder, clock: Clock) -> AsyncIterator[Callable[..., Any]]:
    """Builds started caches (hash embedder, fake clock) and closes them after the test."""
    made: list[ResponseCache] = []

    async def make(config: dict[str, Any] | CacheConfig | None = None, **kwargs: Any) -> ResponseCache:
        cfg = config if isinstance(config, CacheConfig) else msgspec.convert(config or {}, CacheConfig, dec_hook=dec_hook)
        options: dict[str, Any] = {"embedders": {"default": embedder}, "pool": pool, "clock": clock, **kwargs}
        cache = ResponseCache(cfg, **options)
        await cache.start()
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()
