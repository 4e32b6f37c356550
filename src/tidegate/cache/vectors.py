"""The vectors of one semantic partition: exact numpy while small, a USearch HNSW graph when large.

Most partitions are tiny (one conversation's follow-ups), and a USearch index grows a 16 MB arena
on its first add, so a partition starts as a numpy matrix searched exactly on the loop (tens of
µs up to ~1k vectors). Past ``exact_below`` it is rebuilt as HNSW in the worker pool.

No request waits for a graph insert. USearch holds one mutex per index and one insert of a 384-d
f32 vector takes ~0.25 ms, so inserting each stored miss at once made the partition's next lookup
wait behind it. New vectors join a *fresh* exact matrix searched together with the graph, and move
into the graph in the worker pool, a few per mutex hold: right after a search of the partition
(its requester is now waiting on the model, the moment a next lookup is least likely), or after
``FLUSH_DELAY`` when nobody searches. A search that finds the graph busy goes to the pool too, so
the loop itself never blocks on the mutex; it waits for at most one chunk.

The USearch calls themselves (single-threaded inserts, see there why) live in
:mod:`tidegate.cache.graph`.

Rebuilds (that promotion, compaction once removals pile up, demotion when it shrinks) run in the
background: a snapshot is built in the pool while the live structure keeps serving; operations
made meanwhile are logged and replayed onto the new structure under the mutation lock, then the
two are swapped.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Literal

import numpy as np

from .._concurrency import WorkerPool
from .graph import DType, Index, apply_index, build, get_vectors, search_index
from .matrix import ExactVectors, Op, apply_exact

__all__ = ["FLUSH_CHUNK", "FLUSH_DELAY", "LOOP_SEARCH_BELOW", "PartitionIndex", "idle_turn"]

LOOP_SEARCH_BELOW = 250_000
"""Graphs smaller than this are searched on the event loop (f32 384-d: ~0.15 ms at 100k)."""

FLUSH_CHUNK = 8
"""Fresh vectors moved into the graph per mutex hold (~2 ms f32): the longest a search waits."""

INLINE_CHUNK = 2
"""Fresh vectors inserted on the loop per turn when no worker is using the graph."""

IDLE_TURN = 50e-6
"""A loop turn this short ran nothing but us: the loop is idle."""

IDLE_PATIENCE = 0.02
"""Seconds an inline insert waits for an idle turn before it goes in anyway."""

FLUSH_DELAY = 0.05
"""Seconds after an add before fresh vectors move into a graph that nobody searches."""


class PartitionIndex:
    __slots__ = (
        "_busy", "_exact", "_flusher", "_fresh", "_fresh_order", "_index", "_lock", "_log", "_members",
        "_pending", "_pool", "_rebuild", "_removed", "_sequence", "_timer", "dim", "dtype", "exact_below",
        "rebuilds",
    )  # fmt: skip
    """Slots: a partition holds one of these per signature, and most hold a single question."""

    def __init__(self, *, dim: int, dtype: DType, exact_below: int, pool: WorkerPool) -> None:
        self.dim = dim
        self.dtype = dtype
        self.exact_below = exact_below
        self._pool = pool
        self._exact: ExactVectors | None = ExactVectors(dim)
        self._index: Index | None = None
        self._fresh = ExactVectors(dim)  # graph mode: added, not yet in the graph
        self._fresh_order: dict[int, int] = {}  # fresh key -> add sequence, oldest first
        self._sequence = itertools.count()
        self._members: set[int] = set()
        self._pending: list[int] = []  # removals not yet applied to the HNSW graph
        self._removed = 0  # removals applied to the graph since it was built
        self._lock = asyncio.Lock()
        self._log: list[Op] | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0  # worker calls using the graph (holding or awaiting its mutex) right now
        self.rebuilds = 0

    def __len__(self) -> int:
        return len(self._members)

    @property
    def mode(self) -> Literal["exact", "hnsw"]:
        return "exact" if self._index is None else "hnsw"

    @property
    def nbytes(self) -> int:
        if self._exact is not None:
            return self._exact.nbytes
        assert self._index is not None
        return int(self._index.memory_usage) + self._fresh.nbytes

    @property
    def rebuilding(self) -> bool:
        return self._rebuild is not None

    @property
    def unflushed(self) -> int:
        """Vectors of a graph partition still waiting in the fresh matrix."""
        return len(self._fresh)

    # -- mutations ----------------------------------------------------------------------------

    def add(self, key: int, vector: np.ndarray) -> None:
        """Add ``key`` now, without waiting (a graph receives it later). The first vector of a key
        wins until the key is discarded."""
        if key in self._members:
            return
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        self._members.add(key)
        if self._log is not None:
            self._log.append((key, vector))
        if self._exact is not None:
            self._exact.add(key, vector)
        else:
            self._fresh.add(key, vector)
            self._fresh_order[key] = next(self._sequence)
            if self._flusher is None and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush_soon)
        self.maintain()

    async def add_many(self, keys: list[int], vectors: np.ndarray) -> None:
        """Add a batch (prewarming, restoring): one pool call or one matrix copy, not one per key."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        async with self._lock:
            ops: list[Op] = []
            for i, key in enumerate(keys):
                if key not in self._members:
                    self._members.add(key)
                    ops.append((key, vectors[i]))
            if self._log is not None:
                self._log.extend(ops)
            if self._exact is not None:
                apply_exact(self._exact, ops)
            else:
                assert self._index is not None
                await self._writing(apply_index, self._index, self._take_pending() + ops)
        self.maintain()

    def discard(self, key: int) -> None:
        """Forget ``key`` now; a graph drops it lazily (searches skip non-members anyway)."""
        if key not in self._members:
            return
        self._members.discard(key)
        if self._log is not None:
            self._log.append((key, None))
        if self._exact is not None:
            self._exact.remove(key)
        elif self._fresh.remove(key):
            del self._fresh_order[key]
        else:
            self._pending.append(key)
        self.maintain()

    async def flush(self) -> None:
        """Move every fresh vector into the graph and apply pending removals (the periodic
        sweep calls this; requests never wait for it)."""
        while self._index is not None and (self._pending or len(self._fresh)):
            if self._flusher is None:
                self._flush_soon()
            if self._flusher is None:  # a rebuild is running; it takes everything with it
                return
            await asyncio.shield(self._flusher)

    def _flush_soon(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flusher is None and self._rebuild is None and self._index is not None:
            if len(self._fresh) or self._pending:
                self._flusher = asyncio.get_running_loop().create_task(self._run_flush())

    async def _run_flush(self) -> None:
        try:
            while True:
                if self._inline_ok():
                    await idle_turn()  # the insert will run on the loop: let requests go first
                async with self._lock:
                    index = self._index
                    if index is None or self._rebuild is not None:
                        return
                    inline = self._inline_ok()
                    size = INLINE_CHUNK if inline else FLUSH_CHUNK
                    chunk = list(itertools.islice(self._fresh_order.items(), size))
                    if not chunk and not self._pending:
                        return
                    ops = self._take_pending() + [(key, self._fresh.vector(key)) for key, _ in chunk]
                    if inline:
                        # A vector or two (~0.1-0.25 ms) on the loop, which searches this graph
                        # itself and so can never wait for the mutex: cheaper than a thread hop
                        # and a worker competing for the cores. One chunk per idle loop turn.
                        apply_index(index, ops)
                    else:
                        await self._writing(apply_index, index, ops)
                    for key, sequence in chunk:
                        if self._fresh_order.get(key) == sequence:
                            del self._fresh_order[key]
                            self._fresh.remove(key)
                        else:  # discarded, or discarded and re-added, while it went in
                            self._pending.append(key)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None
            self.maintain()

    def _inline_ok(self) -> bool:
        """Whether the next chunk may go into the graph on the loop: nobody else is using it and
        it is small enough. (Sending slow inserts, ~0.3 ms a vector on clustered questions, to the
        pool instead was measured no better: searches then wait for them behind the mutex.)"""
        index = self._index
        return not self._busy and index is not None and len(index) < LOOP_SEARCH_BELOW

    async def _writing(self, fn: Any, index: Index, *args: Any) -> Any:
        """Run a call that holds ``index``'s mutex in a worker; meanwhile searches go to the pool
        too, so the loop never blocks on that mutex."""
        self._busy += 1
        try:
            return await self._pool.run(fn, index, *args)
        finally:
            self._busy -= 1

    def _take_pending(self) -> list[Op]:
        ops: list[Op] = [(k, None) for k in self._pending]
        self._removed += len(self._pending)
        self._pending = []
        return ops

    # -- search -------------------------------------------------------------------------------

    async def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` nearest live keys with their cosine similarity, best first."""
        if not self._members:
            return []
        if self._exact is not None:
            return self._exact.search(vector, k)
        index = self._index
        assert index is not None
        fresh = self._fresh
        # The graph may also hold keys that are still fresh (a chunk going in, a re-added key):
        # fetch enough to make up for them and for removals not yet applied.
        count = k + min(len(self._pending), 32) + (FLUSH_CHUNK if len(fresh) else 0)
        if self._busy or len(index) >= LOOP_SEARCH_BELOW:
            self._busy += 1  # an insert on the loop meanwhile would block on the mutex
            try:
                found = await self._pool.run(search_index, index, vector, count)
            finally:
                self._busy -= 1
        else:
            # Nobody holds the mutex and a search takes ~0.1-0.3 ms here: cheaper than the
            # ~0.1 ms thread hop it saves, and well under the 1 ms we allow on the loop.
            found = search_index(index, vector, count)
        members = self._members
        found = [(key, sim) for key, sim in found if key in members and key not in fresh]
        if len(fresh):
            found = sorted(found + fresh.search(vector, k), key=_by_similarity)
            self._flush_soon()
        return found[:k]

    # -- rebuilds -----------------------------------------------------------------------------

    def maintain(self) -> None:
        """Start a rebuild in the background if this partition outgrew, or shrank below, its
        structure, or its graph holds too many removed nodes; never waits."""
        if self._rebuild is not None:
            return
        live = len(self._members)
        if self._exact is not None:
            wanted = live >= self.exact_below
        else:
            dead = self._removed + len(self._pending)
            wanted = live < self.exact_below // 2 or dead >= max(256, live // 2)
        if wanted:
            self._rebuild = asyncio.get_running_loop().create_task(self._run_rebuild())

    async def _run_rebuild(self) -> None:
        try:
            async with self._lock:
                self._log = []
                exact, index = self._exact, self._index
                if exact is not None:
                    keys, vectors = exact.snapshot()
                else:
                    fresh_keys, fresh_vectors = self._fresh.snapshot()
                    fresh = self._fresh
                    keys = np.fromiter((k for k in self._members if k not in fresh), dtype=np.uint64)
            if index is not None:
                # Keys discarded since the snapshot may be gone from the graph already; they are
                # in the log, so dropping them here loses nothing.
                keys, vectors = await self._writing(get_vectors, index, keys, self.dim)
                keys = np.concatenate([keys, fresh_keys])
                vectors = np.concatenate([vectors, fresh_vectors])
            to_graph = len(keys) >= self.exact_below // 2
            built = await self._pool.run(build, keys, vectors, self.dim, self.dtype, to_graph)
            removed = 0
            async with self._lock:
                while self._log:
                    batch, self._log = self._log, []
                    if isinstance(built, Index):
                        removed += sum(1 for _, vector in batch if vector is None)
                        await self._pool.run(apply_index, built, batch)
                    else:
                        apply_exact(built, batch)
                self._log = None
                if isinstance(built, Index):
                    self._exact, self._index = None, built
                else:
                    self._exact, self._index = built, None
                self._fresh, self._fresh_order = ExactVectors(self.dim), {}  # all in `built` now
                self._pending = []
                self._removed = removed  # replayed removals are dead nodes of the new graph
                self.rebuilds += 1
        finally:
            if self._rebuild is asyncio.current_task():  # not replaced after a cancel()
                self._log = None
                self._rebuild = None
        # Writes made during the rebuild may already call for the next one (grew past
        # ``exact_below`` while demoting, many removals replayed): nothing else would notice.
        self.maintain()

    async def settle(self) -> None:
        """Wait until no rebuild or flush is running (tests and benchmarks; requests never wait)."""
        while self._rebuild is not None or self._flusher is not None:
            running = [t for t in (self._rebuild, self._flusher) if t is not None]
            await asyncio.gather(*(asyncio.shield(t) for t in running), return_exceptions=True)

    def cancel(self) -> None:
        """Stop background work (the partition is being dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in (self._rebuild, self._flusher):
            if task is not None:
                task.cancel()
        self._rebuild = self._flusher = None  # a task cancelled before it ran never reaches its finally
        self._log = None

    async def aclose(self) -> None:
        tasks = [t for t in (self._rebuild, self._flusher) if t is not None]
        self.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def idle_turn() -> None:
    """Return on the first loop turn that had nothing else to run (or after ``IDLE_PATIENCE``).

    Right after a search, the turn that follows usually sends that requester's upstream call;
    the one after it, with every task waiting on a socket, is free, so an insert there delays
    nobody. A loaded loop has no such turn, and the deadline keeps inserts from starving.
    """
    deadline = time.perf_counter() + IDLE_PATIENCE
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0)
        now = time.perf_counter()
        if now - started < IDLE_TURN or now > deadline:
            return


def _by_similarity(found: tuple[int, float]) -> float:
    return -found[1]
