"""The stores under the cache: TTL with an injected clock, bounds under churn, index rebuilds."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from cache.helpers import Clock, completion
from tidegate._concurrency import WorkerPool
from tidegate.cache import Entry
from tidegate.cache.exact import ExactStore
from tidegate.cache.semantic import SemanticStore
from tidegate.cache.vectors import PartitionIndex


def entry(text: str, clock: Clock, ttl: float = 60.0) -> Entry:
    return Entry.from_completion(completion(text), created=clock(), expires=clock() + ttl)


def unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- exact --------------------------------------------------------------------------------------


def test_exact_entries_expire_on_the_injected_clock(clock: Clock) -> None:
    evicted: list[str] = []
    store = ExactStore(10, clock=clock, evicted=lambda reason, _e: evicted.append(reason))
    store.put(b"k", entry("a", clock, ttl=60))
    clock.advance(59.9)
    assert store.get(b"k") is not None
    clock.advance(0.1)
    assert store.get(b"k") is None
    assert store.sweep() == 1
    assert evicted == ["ttl"]
    assert len(store) == 0 and store.bytes == 0
    store.put(b"dead", entry("b", clock, ttl=0))  # already expired: not stored
    assert len(store) == 0


def test_exact_store_stays_bounded_and_accounted_under_churn(clock: Clock) -> None:
    evicted: list[str] = []
    store = ExactStore(100, clock=clock, evicted=lambda reason, _e: evicted.append(reason))
    store.put(b"hot", entry("hot", clock))
    for i in range(5000):
        store.put(f"k{i}".encode(), entry(f"v{i}", clock, ttl=1 + i % 7))
        store.get(b"hot")  # recently used: survives LRU eviction
        if i % 500 == 0:
            clock.advance(2)
        assert len(store) <= 100
    assert store.get(b"hot") is not None
    assert evicted.count("lru") > 4000
    live = [store.get(f"k{i}".encode()) for i in range(5000)]
    expected = sum(e.size for e in live if e is not None) + entry("hot", clock).size
    assert store.bytes == expected
    store.put(b"hot", entry("replaced", clock))  # overwriting keeps the count right
    assert store.bytes == expected - entry("hot", clock).size + entry("replaced", clock).size


# -- semantic -----------------------------------------------------------------------------------


async def test_semantic_store_bounded_across_partitions(clock: Clock, pool: WorkerPool) -> None:
    rng = np.random.default_rng(1)
    evicted: list[str] = []
    store = SemanticStore(max_entries=50, clock=clock, pool=pool, dim=32, exact_below=1024,
                          evicted=lambda reason, _e: evicted.append(reason))  # fmt: skip
    vectors = unit(rng, 1000)
    for i in range(1000):
        store.put(f"p{i % 200}".encode(), f"question {i}", f"question {i}", vectors[i], entry(str(i), clock))
        assert len(store) <= 50
    assert store.partitions <= 50
    assert evicted.count("lru") == 950
    # The survivors are the most recent and findable by vector and by text.
    found = await store.search(b"p199", vectors[999], k=1)
    assert [(item.question, round(sim, 4)) for item, sim in found] == [("question 999", 1.0)]
    assert store.get_normalized(b"p199", "question 999") is not None
    assert store.get_normalized(b"p0", "question 0") is None
    clock.advance(61)
    assert await store.sweep() == 50
    assert len(store) == 0 and store.partitions == 0 and store.bytes == 0


async def test_signatures_keep_vectors_apart_and_leave_nothing_behind(clock: Clock, pool: WorkerPool) -> None:
    rng = np.random.default_rng(3)
    store = SemanticStore(max_entries=500, clock=clock, pool=pool, dim=32, exact_below=64)
    vectors = unit(rng, 400)
    for i in range(400):  # 100 signatures of 4 questions; one grows a graph, the rest stay small
        signature = "big" if i < 200 else f"n{i % 50}"
        store.put(b"p", f"question {i}", f"question {i}", vectors[i], entry(str(i), clock, ttl=10 + i % 2 * 100),
                  signature=signature)  # fmt: skip
    await store.settle()
    part = store._partitions[b"p"]
    assert len(part.indexes) == 51 and part.indexes["big"].mode == "hnsw"
    # Each signature is searched alone, even by a vector stored under another.
    assert [i.question for i, _ in await store.search(b"p", vectors[251], k=1, signature="n1")] == ["question 251"]
    others = await store.search(b"p", vectors[251], k=9, signature="n0")
    assert sorted(i.question for i, _ in others) == [f"question {n}" for n in (200, 250, 300, 350)]
    assert await store.search(b"p", vectors[5], k=1, signature="nothing") == []
    # A vector is put once: a second signature for the same entry is ignored.
    item = store.get_normalized(b"p", "question 201")
    assert item is not None and item.signature == "n1"
    store.put_vector(item, vectors[0], "big")
    assert all(i.question != "question 201" for i, _ in await store.search(b"p", vectors[0], k=5, signature="big"))
    clock.advance(11)  # the even questions expire; odd-numbered signatures lose nothing
    assert await store.sweep() == 200
    assert len(part.indexes) == 26 and "big" in part.indexes  # emptied signatures are dropped
    clock.advance(200)
    assert await store.sweep() == 200
    assert store.partitions == 0 and store.vector_bytes == 0 and len(store) == 0


async def test_semantic_ttl_is_checked_lazily_and_swept(clock: Clock, pool: WorkerPool) -> None:
    rng = np.random.default_rng(2)
    store = SemanticStore(max_entries=100, clock=clock, pool=pool, dim=32)
    v = unit(rng, 2)
    store.put(b"p", "short", "short", v[0], entry("a", clock, ttl=10))
    store.put(b"p", "long", "long", v[1], entry("b", clock, ttl=100))
    clock.advance(10)
    assert await store.search(b"p", v[0], k=2) != [] and all(i.question == "long" for i, _ in await store.search(b"p", v[0], k=2))
    assert store.get_normalized(b"p", "short") is None
    assert len(store) == 1  # the lazy check already removed it
    clock.advance(90)
    assert await store.sweep() == 1
    assert store.partitions == 0


async def test_same_text_replaces_the_older_entry(clock: Clock, pool: WorkerPool) -> None:
    store = SemanticStore(max_entries=10, clock=clock, pool=pool)  # no embedder: text only
    store.put(b"p", "Hi?", "hi", None, entry("old", clock))
    store.put(b"p", "hi", "hi", None, entry("new", clock))
    item = store.get_normalized(b"p", "hi")
    assert len(store) == 1 and item is not None
    answer = item.entry.completion()
    assert answer is not None and answer["choices"][0]["message"]["content"] == "new"


# -- partition index ------------------------------------------------------------------------------


async def test_partition_promotes_to_hnsw_and_keeps_serving(pool: WorkerPool) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 300)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=64, pool=pool)
    for i in range(64):
        index.add(i + 1, vectors[i])
    assert index.rebuilding  # promotion started in the background
    await asyncio.sleep(0)  # it takes its snapshot: adds in exact mode never yield, so it would wait
    for i in range(64, 200):  # writes during the rebuild are logged and replayed
        index.add(i + 1, vectors[i])
        if i % 3 == 0:
            index.discard(i + 1)
    await index.settle()
    assert index.mode == "hnsw" and index.rebuilds >= 1
    removed = {i + 1 for i in range(64, 200) if i % 3 == 0}
    for i in range(200):
        found = await index.search(vectors[i], 3)
        keys = [k for k, _ in found]
        assert not removed & set(keys)
        if i + 1 not in removed:
            assert keys[0] == i + 1
    assert len(index) == 200 - len(removed)


async def test_removals_compact_and_demote_off_the_loop(pool: WorkerPool) -> None:
    rng = np.random.default_rng(4)
    vectors = unit(rng, 400)
    index = PartitionIndex(dim=32, dtype="i8", exact_below=128, pool=pool)
    for i in range(400):
        index.add(i + 1, vectors[i])
    await index.settle()
    assert index.mode == "hnsw"
    for i in range(360):
        index.discard(i + 1)
    await index.flush()
    await index.settle()
    assert index.mode == "exact"  # 40 left: exact search is cheaper again
    for i in range(360, 400):
        assert (await index.search(vectors[i], 1))[0][0] == i + 1
    assert await index.search(vectors[0], 5) and all(k > 360 for k, _ in await index.search(vectors[0], 5))


async def test_exact_search_matches_brute_force(pool: WorkerPool) -> None:
    rng = np.random.default_rng(5)
    vectors = unit(rng, 50)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=1000, pool=pool)
    for i, v in enumerate(vectors):
        index.add(i + 1, v)
    for i in range(0, 50, 5):
        index.discard(i + 1)
    query = unit(rng, 1)[0]
    live = [i for i in range(50) if i % 5]
    sims = {i + 1: float(vectors[i] @ query) for i in live}
    expected = sorted(sims, key=lambda k: -sims[k])[:4]
    assert [k for k, _ in await index.search(query, 4)] == expected
    assert index.mode == "exact"


async def test_closing_cancels_a_running_rebuild(pool: WorkerPool, no_leaked_tasks: object) -> None:
    rng = np.random.default_rng(6)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=16, pool=pool)
    for i, v in enumerate(unit(rng, 16)):
        index.add(i + 1, v)
    assert index.rebuilding
    await index.aclose()
    assert not index.rebuilding
    await asyncio.sleep(0)
    await no_leaked_tasks()  # type: ignore[operator]


async def test_bulk_insert_builds_one_graph(clock: Clock, pool: WorkerPool) -> None:
    rng = np.random.default_rng(7)
    vectors = unit(rng, 300)
    store = SemanticStore(max_entries=250, clock=clock, pool=pool, dim=32, exact_below=64)
    rows = [(f"q{i}", f"q{i}", vectors[i], entry(str(i), clock)) for i in range(300)]
    assert await store.put_many(b"p", rows) == 300
    await store.settle()
    assert len(store) == 250  # the bound holds for batches too
    found = await store.search(b"p", vectors[299], k=1)
    assert found[0][0].question == "q299"
    assert await store.search(b"p", vectors[0], k=3) and all(i.question != "q0" for i, _ in await store.search(b"p", vectors[0], k=3))


async def test_graph_paths_batch_adds_and_pool_searches(pool: WorkerPool, monkeypatch: object) -> None:
    from tidegate.cache import vectors as module

    rng = np.random.default_rng(8)
    vectors = unit(rng, 400)
    index = PartitionIndex(dim=32, dtype="f16", exact_below=64, pool=pool)
    await index.add_many(list(range(1, 101)), vectors[:100])
    await index.settle()
    assert index.mode == "hnsw" and index.nbytes > 0
    await index.add_many(list(range(101, 201)), vectors[100:200])  # a batch into the graph
    for key in range(1, 21):
        index.discard(key)  # pending until the next add or flush
    monkeypatch.setattr(module, "LOOP_SEARCH_BELOW", 0)  # type: ignore[attr-defined]
    found = await index.search(vectors[150], 3)  # through the worker pool this time
    assert found[0][0] == 151
    assert all(k > 20 for k, _ in await index.search(vectors[5], 5))
    await index.flush()
    index.add(201, vectors[200])
    assert (await index.search(vectors[200], 1))[0][0] == 201
    assert len(index) == 181


async def test_every_vector_of_a_built_graph_is_reachable(pool: WorkerPool) -> None:
    # USearch's multi-threaded batch add strands nodes (stored, yet never found by search): before
    # inserts went single-threaded, about half of the 2k-vector builds on 2 cores had one or more.
    rng = np.random.default_rng(9)
    vectors = [unit(rng, 2500) for _ in range(6)]
    indexes = [PartitionIndex(dim=32, dtype="f32", exact_below=64, pool=pool) for _ in vectors]
    keys = list(range(1, 2501))
    await asyncio.gather(*(ix.add_many(keys[:2000], v[:2000]) for ix, v in zip(indexes, vectors, strict=True)))
    await asyncio.gather(*(ix.settle() for ix in indexes))  # promotion: one batch build each
    assert all(ix.mode == "hnsw" for ix in indexes)
    await asyncio.gather(*(ix.add_many(keys[2000:], v[2000:]) for ix, v in zip(indexes, vectors, strict=True)))
    for ix, v in zip(indexes, vectors, strict=True):
        missed = [key for key in keys if (await ix.search(v[key - 1], 1))[0][0] != key]
        assert missed == []


@pytest.mark.parametrize("yield_every", [0, 1, 4])
async def test_writes_racing_a_promotion_land_exactly_once(pool: WorkerPool, yield_every: int) -> None:
    """Adds, discards and a key re-added with a new vector, made after the promotion took its
    snapshot: some logged before the build ends, some waiting on the lock during the replay, some
    after the swap. The graph must end up holding exactly the live keys with their last vector."""
    rng = np.random.default_rng(10)
    vectors = unit(rng, 260)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=64, pool=pool)
    live: dict[int, np.ndarray] = {}
    for i in range(64):
        index.add(i + 1, vectors[i])
        live[i + 1] = vectors[i]
    assert index.rebuilding
    await asyncio.sleep(0)  # the rebuild has its snapshot; everything below is logged or later
    gone: set[int] = set()
    for step, i in enumerate(range(64, 200)):
        index.add(i + 1, vectors[i])
        live[i + 1] = vectors[i]
        if i % 3 == 0:  # a key of the snapshot, then one added after it
            for key in (i - 60, i + 1):
                index.discard(key)
                live.pop(key, None)
                gone.add(key)
        if i % 5 == 0:  # re-added with another vector: the old one must not come back
            key, fresh = i - 61, vectors[200 + i // 5 - 13]  # rows 200..226: used by no other key
            index.discard(key)
            index.add(key, fresh)
            live[key] = fresh
            gone.discard(key)
        if yield_every and step % yield_every == 0:
            await asyncio.sleep(0)
    await index.settle()
    assert index.mode == "hnsw" and index.rebuilds >= 1 and not index.rebuilding
    assert len(index) == len(live)
    for key, vector in live.items():
        found = await index.search(vector, 3)
        assert found[0][0] == key and found[0][1] == pytest.approx(1.0, abs=1e-5)
        assert not gone & {k for k, _ in found}
    for key in gone:  # a discarded key is not found even by its own vector
        assert all(k != key for k, _ in await index.search(vectors[key - 1], 5))


# -- the scan and the fresh tail ------------------------------------------------------------------


@pytest.mark.parametrize("bits", [True, False])
def test_scanned_matrix_finds_near_neighbours_with_exact_similarities(
    bits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidegate.cache import matrix

    if not bits:
        monkeypatch.setattr(matrix, "_KERNELS", None)  # numkong missing: scan the float32 rows
    elif matrix._KERNELS is None:
        pytest.skip("numkong (installed with usearch) is not importable here")
    rng = np.random.default_rng(11)
    vectors = unit(rng, 3000, dim=64)
    exact = matrix.ExactVectors(64)
    for i, v in enumerate(vectors):
        exact.add(i + 1, v)
    for key in range(1, 3001, 7):
        exact.remove(key)
    live = [k for k in range(1, 3001) if (k - 1) % 7]
    for key in live[::97]:  # a paraphrase: the stored question, slightly moved
        query = vectors[key - 1] + rng.standard_normal(64).astype(np.float32) * 0.05
        query /= np.linalg.norm(query)
        found = exact.search(query, 4)
        assert found[0][0] == key
        assert [s for _, s in found] == pytest.approx([float(vectors[k - 1] @ query) for k, _ in found], abs=1e-5)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    if not bits:  # the float32 scan is exact for any query
        query = unit(rng, 1, dim=64)[0]
        sims = {k: float(vectors[k - 1] @ query) for k in live}
        assert [k for k, _ in exact.search(query, 4)] == sorted(sims, key=lambda k: -sims[k])[:4]
    rebuilt = matrix.ExactVectors(64, *exact.snapshot())  # a snapshot keeps rows and bits
    assert rebuilt.search(vectors[1], 1)[0][0] == 2


def test_scan_sees_rows_added_and_moved_after_it_packed_the_bits() -> None:
    from tidegate.cache import matrix

    if matrix._KERNELS is None:
        pytest.skip("numkong (installed with usearch) is not importable here")
    rng = np.random.default_rng(12)
    vectors = unit(rng, 2000, dim=64)
    exact = matrix.ExactVectors(64)
    for i in range(600):
        exact.add(i + 1, vectors[i])
    assert exact.search(vectors[5], 1)[0][0] == 6  # packs rows 0..599
    for i in range(600, 2000):  # past the unpacked allowance, several times over
        exact.add(i + 1, vectors[i])
        if i % 97 == 0:
            assert exact.search(vectors[i], 1)[0][0] == i + 1
    for key in range(1, 2001, 3):  # swap-removes move rows into packed slots
        exact.remove(key)
        if key % 301 == 0:
            survivor = key + 1
            assert exact.search(vectors[survivor - 1], 1)[0][0] == survivor
    for key in (k for k in range(1, 2001) if (k - 1) % 3):
        found = exact.search(vectors[key - 1], 2)
        assert found[0][0] == key and found[0][1] == pytest.approx(1.0, abs=1e-5)


async def test_graph_adds_never_wait_and_reach_the_graph_later(pool: WorkerPool) -> None:
    rng = np.random.default_rng(12)
    vectors = unit(rng, 400)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=64, pool=pool)
    await index.add_many(list(range(1, 201)), vectors[:200])
    await index.settle()
    assert index.mode == "hnsw" and index.unflushed == 0
    for i in range(200, 260):
        index.add(i + 1, vectors[i])  # synchronous: nothing waits for the graph
    assert index.unflushed == 60
    assert (await index.search(vectors[230], 1))[0][0] == 231  # found in the fresh tail at once
    await index.settle()  # the search started the move; idle turns finish it
    assert index.unflushed == 0
    for i in range(260):
        assert (await index.search(vectors[i], 1))[0][0] == i + 1


async def test_discards_and_re_adds_racing_a_pool_flush(pool: WorkerPool, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidegate.cache import vectors as module

    rng = np.random.default_rng(13)
    vectors = unit(rng, 300)
    index = PartitionIndex(dim=32, dtype="f32", exact_below=64, pool=pool)
    await index.add_many(list(range(1, 101)), vectors[:100])
    await index.settle()
    monkeypatch.setattr(module, "LOOP_SEARCH_BELOW", 0)  # flushes and searches go to the pool
    for i in range(100, 116):
        index.add(i + 1, vectors[i])
    assert (await index.search(vectors[0], 1))[0][0] == 1  # a search starts moving the tail
    for _ in range(100):  # until the first chunk is inside the graph's mutex, in a worker
        if index._busy:
            break
        await asyncio.sleep(0)
    assert index._busy and index.unflushed == 16
    index.discard(101)  # in the chunk being inserted
    index.discard(102)
    index.add(102, vectors[250])  # re-added with another vector while its old one goes in
    await index.flush()
    await index.settle()
    assert index.unflushed == 0
    assert all(k != 101 for k, _ in await index.search(vectors[100], 5))
    found = await index.search(vectors[250], 1)
    assert found[0][0] == 102 and found[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(sim < 0.999 for _, sim in await index.search(vectors[101], 3))  # its old vector is gone
    assert len(index) == 115
