"""Micro-batching, caching, lifecycle and dimension checks shared by every embedder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tidegate._concurrency import WorkerPool
from tidegate.embeddings import BatchingEmbedder, EmbedderConfig, HashEmbedder, build_embedder
from tidegate.embeddings.base import InputKind
from tidegate.errors import Overloaded, UpstreamError, UsageError


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(2, name="test-embed")
    yield workers
    workers.shutdown()


class Recording(BatchingEmbedder):
    """A real embedder over the hashing features that records how it was called."""

    def __init__(self, pool: WorkerPool, *, dim: int = 32, fail: bool = False, **options: object) -> None:
        super().__init__("rec", dim=dim, model_id="rec", **options)  # type: ignore[arg-type]
        self.pool = pool
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None
        self.out_dim = dim

    async def _embed_batch(self, texts: list[str], kind: InputKind) -> np.ndarray:
        self.batches.append(list(texts))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise UpstreamError("model exploded", upstream="rec")

        def compute() -> np.ndarray:
            from tidegate.embeddings.hashing import hash_vectors

            self.threads.append(threading.current_thread().name)
            return hash_vectors(texts, self.out_dim)

        return await self.pool.run(compute)


async def test_concurrent_requests_share_batches(pool: WorkerPool) -> None:
    async with Recording(pool, batch_size=8, batch_wait=0.05) as emb:
        results = await asyncio.gather(*(emb.embed([f"text {i}"]) for i in range(20)))
    assert [len(b) for b in emb.batches] == [8, 8, 4]
    assert all(r.shape == (1, 32) for r in results)
    # Work ran on the pool's threads, never on the loop's.
    assert emb.threads and all(name.startswith("test-embed") for name in emb.threads)


async def test_vectors_are_normalized_float32_and_ordered(pool: WorkerPool) -> None:
    async with HashEmbedder("h", pool=pool, dim=64) as emb:
        out = await emb.embed(["alpha", "beta", "alpha", ""])
    assert out.dtype == np.float32 and out.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(out[:3], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(out[0], out[2])
    assert not np.array_equal(out[0], out[1])
    assert np.linalg.norm(out[3]) == 0.0  # nothing to hash: a zero vector, not NaN


async def test_cache_serves_repeats_without_calling_the_model(pool: WorkerPool) -> None:
    async with Recording(pool, batch_wait=0.0) as emb:
        first = await emb.embed(["where is my parcel"])
        again = await emb.embed(["where is my parcel"])
        assert len(emb.batches) == 1
        np.testing.assert_array_equal(first, again)
        await emb.embed(["where is my parcel"], kind="document")
        assert len(emb.batches) == 2  # queries and documents are cached apart


async def test_cache_expires_after_ttl_and_is_bounded(pool: WorkerPool) -> None:
    now = [0.0]
    async with Recording(pool, batch_wait=0.0, cache_size=2, cache_ttl=10.0, timer=lambda: now[0]) as emb:
        await emb.embed(["a"])
        now[0] = 11.0
        await emb.embed(["a"])
        assert len(emb.batches) == 2
        await emb.embed(["b"])
        await emb.embed(["c"])  # evicts "a"
        calls = len(emb.batches)
        await emb.embed(["a"])
        assert len(emb.batches) == calls + 1
        assert len(emb._cache or {}) <= 2


async def test_cache_can_be_turned_off(pool: WorkerPool) -> None:
    async with Recording(pool, batch_wait=0.0, cache_size=0) as emb:
        await emb.embed(["x"])
        await emb.embed(["x"])
    assert len(emb.batches) == 2


async def test_bulk_calls_split_into_batches_and_skip_the_cache(pool: WorkerPool) -> None:
    async with Recording(pool, batch_size=10) as emb:
        texts = [f"chunk {i}" for i in range(25)] + ["chunk 3"]
        out = await emb.embed(texts, kind="document")
        assert sorted(len(b) for b in emb.batches) == [5, 10, 10]  # duplicates sent once
        np.testing.assert_array_equal(out[3], out[25])
        assert len(emb._cache or {}) == 0


async def test_model_errors_reach_every_waiter(pool: WorkerPool) -> None:
    async with Recording(pool, fail=True, batch_wait=0.01) as emb:
        results = await asyncio.gather(*(emb.embed([f"t{i}"]) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results)
    assert len(emb.batches) == 1


async def test_wrong_dimension_is_refused(pool: WorkerPool) -> None:
    emb = Recording(pool, dim=16, batch_wait=0.0)
    emb.out_dim = 8
    async with emb:
        with pytest.raises(UpstreamError, match="dimension 16"):
            await emb.embed(["x"])


async def test_a_cancelled_caller_does_not_break_the_batch(pool: WorkerPool) -> None:
    async with Recording(pool, batch_wait=0.01) as emb:
        emb.gate = asyncio.Event()
        doomed = asyncio.create_task(emb.embed(["one"]))
        kept = asyncio.create_task(emb.embed(["two"]))
        await asyncio.sleep(0.05)
        doomed.cancel()
        emb.gate.set()
        assert (await kept).shape == (1, 32)
        with pytest.raises(asyncio.CancelledError):
            await doomed


async def test_idle_model_gets_requests_without_waiting(pool: WorkerPool) -> None:
    async with Recording(pool, batch_wait=5.0) as emb:
        started = asyncio.get_running_loop().time()
        await emb.embed(["alone"])
        assert asyncio.get_running_loop().time() - started < 2.0  # not held for batch_wait


async def test_requests_collect_while_the_model_is_busy(pool: WorkerPool) -> None:
    async with Recording(pool, batch_size=16, batch_wait=5.0) as emb:
        emb.gate = asyncio.Event()
        first = asyncio.create_task(emb.embed(["first"]))
        await asyncio.sleep(0.02)
        later = [asyncio.create_task(emb.embed([f"later {i}"])) for i in range(5)]
        await asyncio.sleep(0.02)
        assert [len(b) for b in emb.batches] == [1]
        emb.gate.set()  # the busy batch ends: the five waiting go out together, not after 5 s
        await asyncio.wait_for(asyncio.gather(first, *later), 2.0)
        assert [len(b) for b in emb.batches] == [1, 5]


async def test_queue_is_bounded(pool: WorkerPool) -> None:
    async with Recording(pool, batch_size=4, batch_wait=0.5, max_pending=3) as emb:
        emb.gate = asyncio.Event()
        busy = asyncio.create_task(emb.embed(["keeps the model busy"]))
        await asyncio.sleep(0.02)
        waiting = [busy] + [asyncio.create_task(emb.embed([f"q{i}"])) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await emb.embed(["one too many"])
        emb.gate.set()
        await asyncio.gather(*waiting)


async def test_lifecycle_misuse_is_reported_and_close_leaves_no_tasks(pool: WorkerPool) -> None:
    emb = Recording(pool, batch_wait=10.0)
    with pytest.raises(UsageError, match="start"):
        await emb.embed(["x"])
    await emb.start()
    with pytest.raises(UsageError):
        await emb.start()
    emb.gate = asyncio.Event()  # never set: the first batch hangs in the model
    running = asyncio.create_task(emb.embed(["in the model"]))
    await asyncio.sleep(0.01)
    pending = asyncio.create_task(emb.embed(["never batched"]))
    await asyncio.sleep(0.01)
    await emb.close()
    with pytest.raises(UsageError, match="closed"):
        await pending
    with pytest.raises(UsageError, match="closed"):
        await running
    with pytest.raises(UsageError):
        await emb.embed(["x"])
    await emb.close()  # idempotent
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leftover


async def test_embed_rejects_a_bare_string(pool: WorkerPool) -> None:
    async with HashEmbedder("h", pool=pool) as emb:
        with pytest.raises(TypeError):
            await emb.embed("not a list")  # type: ignore[arg-type]
        assert (await emb.embed([])).shape == (0, 512)


async def test_build_embedder_hash_uses_config(pool: WorkerPool) -> None:
    emb = build_embedder("h", EmbedderConfig(kind="hash", dim=128, batch_size=7), pool)
    assert isinstance(emb, HashEmbedder)
    assert emb.dim == 128 and emb.batch_size == 7 and emb.model_id == "hash:128"
