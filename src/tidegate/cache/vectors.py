"""The vectors of one semantic partition: exact numpy while small, a USearch HNSW graph when large.

Most partitions are tiny (one conversation's follow-ups), and a USearch index grows a 16 MB arena
on its first add, so a partition starts as a numpy matrix searched exactly on the loop (tens of
µs up to ~1k vectors). Past ``exact_below`` it is rebuilt as HNSW in the worker pool, and every
USearch call goes through the pool from then on: USearch holds one mutex per index, so a search
on the loop could wait behind an insert running in a worker.

Every insert is single-threaded (``threads=1``): USearch's multi-threaded batch add races between
concurrent inserts and leaves some nodes stored but unreachable by search (unum-cloud/USearch#735,
~1 % of a 1k-vector build on 2 cores), i.e. cached answers that can never hit again.

Rebuilds (that promotion, compaction once removals pile up, demotion when it shrinks) run in the
background: a snapshot is built in the pool while the live structure keeps serving; operations
made meanwhile are logged and replayed onto the new structure under the mutation lock, then the
two are swapped.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import numpy as np

from .._concurrency import WorkerPool
from ..embeddings import _native  # noqa: F401  (onnxruntime must load before usearch)

from usearch.index import Index  # isort: skip

__all__ = ["LOOP_SEARCH_BELOW", "ExactVectors", "PartitionIndex"]

DType = Literal["f32", "f16", "i8"]
_Op = tuple[int, "np.ndarray | None"]  # (key, vector) adds; (key, None) removes

LOOP_SEARCH_BELOW = 250_000
"""Graphs smaller than this are searched on the event loop (f32 384-d: ~0.15 ms at 100k)."""


class ExactVectors:
    """A growable float32 matrix with swap-remove; searched by one matrix-vector product."""

    __slots__ = ("_keys", "_matrix", "_n", "_slots", "dim")

    def __init__(self, dim: int, keys: np.ndarray | None = None, matrix: np.ndarray | None = None) -> None:
        self.dim = dim
        count = 0 if keys is None else len(keys)
        capacity = max(2, count * 2)
        self._keys = np.empty(capacity, dtype=np.uint64)
        self._matrix = np.empty((capacity, dim), dtype=np.float32)
        self._n = count
        self._slots: dict[int, int] = {}
        if keys is not None and matrix is not None and count:
            self._keys[:count] = keys
            self._matrix[:count] = matrix
            self._slots = {int(k): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return self._matrix.nbytes + self._keys.nbytes

    def add(self, key: int, vector: np.ndarray) -> None:
        if key in self._slots:
            return
        if self._n == len(self._keys):
            keys = np.empty(self._n * 2, dtype=np.uint64)
            keys[: self._n] = self._keys
            matrix = np.empty((self._n * 2, self.dim), dtype=np.float32)
            matrix[: self._n] = self._matrix
            self._keys, self._matrix = keys, matrix
        slot = self._n
        self._keys[slot] = key
        self._matrix[slot] = vector
        self._slots[key] = slot
        self._n += 1

    def remove(self, key: int) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        last = self._n - 1
        if slot != last:
            moved = int(self._keys[last])
            self._keys[slot] = moved
            self._matrix[slot] = self._matrix[last]
            self._slots[moved] = slot
        self._n = last

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self._keys[: self._n].copy(), self._matrix[: self._n].copy()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        n = self._n
        if n == 0:
            return []
        # einsum, not BLAS: OpenBLAS threads a matrix-vector product this size and, on a busy
        # machine, waking its threads costs milliseconds on the event loop.
        sims = np.einsum("ij,j->i", self._matrix[:n], vector)
        if n > k:
            top = np.argpartition(-sims, k)[:k]
            top = top[np.argsort(-sims[top])]
        else:
            top = np.argsort(-sims)
        return [(int(self._keys[i]), float(sims[i])) for i in top]


class PartitionIndex:
    def __init__(self, *, dim: int, dtype: DType, exact_below: int, pool: WorkerPool) -> None:
        self.dim = dim
        self.dtype = dtype
        self.exact_below = exact_below
        self._pool = pool
        self._exact: ExactVectors | None = ExactVectors(dim)
        self._index: Index | None = None
        self._members: set[int] = set()
        self._pending: list[int] = []  # removals not yet applied to the HNSW graph
        self._removed = 0  # removals applied to the graph since it was built
        self._lock = asyncio.Lock()
        self._log: list[_Op] | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self._busy = 0  # worker calls that hold the graph's mutex right now
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
        return int(self._index.memory_usage)

    @property
    def rebuilding(self) -> bool:
        return self._rebuild is not None

    # -- mutations ----------------------------------------------------------------------------

    async def add(self, key: int, vector: np.ndarray) -> None:
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        async with self._lock:
            self._members.add(key)
            if self._log is not None:
                self._log.append((key, vector))
            if self._exact is not None:
                self._exact.add(key, vector)
            else:
                assert self._index is not None
                ops = self._take_pending()
                ops.append((key, vector))
                await self._writing(_apply_index, self._index, ops)
        self.maintain()

    async def add_many(self, keys: list[int], vectors: np.ndarray) -> None:
        """Add a batch (prewarming, restoring): one pool call or one matrix copy, not one per key."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        async with self._lock:
            self._members.update(keys)
            ops: list[_Op] = [(k, vectors[i]) for i, k in enumerate(keys)]
            if self._log is not None:
                self._log.extend(ops)
            if self._exact is not None:
                _apply_exact(self._exact, ops)
            else:
                assert self._index is not None
                await self._writing(_apply_index, self._index, self._take_pending() + ops)
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
        else:
            self._pending.append(key)
        self.maintain()

    async def flush(self) -> None:
        """Apply pending removals to the graph (the periodic sweep calls this)."""
        if self._index is None or not self._pending:
            return
        async with self._lock:
            if self._index is not None and self._pending:
                await self._writing(_apply_index, self._index, self._take_pending())
        self.maintain()

    async def _writing(self, fn: Any, index: Index, *args: Any) -> Any:
        """Run a call that holds ``index``'s mutex in a worker; meanwhile searches go to the pool
        too, so the loop never blocks on that mutex."""
        self._busy += 1
        try:
            return await self._pool.run(fn, index, *args)
        finally:
            self._busy -= 1

    def _take_pending(self) -> list[_Op]:
        ops: list[_Op] = [(k, None) for k in self._pending]
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
        assert self._index is not None
        count = k + min(len(self._pending), 32)
        if self._busy or len(self._index) >= LOOP_SEARCH_BELOW:
            found = await self._pool.run(_search_index, self._index, vector, count)
        else:
            # Nobody holds the mutex and a search takes ~0.1-0.3 ms here: cheaper than the
            # ~0.1 ms thread hop it saves, and well under the 1 ms we allow on the loop.
            found = _search_index(self._index, vector, count)
        members = self._members
        return [(key, sim) for key, sim in found if key in members][:k]

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
                    keys = np.fromiter(self._members, dtype=np.uint64, count=len(self._members))
            if index is not None:
                # Keys discarded since the snapshot may be gone from the graph already; they are
                # in the log, so dropping them here loses nothing.
                keys, vectors = await self._writing(_get_vectors, index, keys, self.dim)
            to_graph = len(keys) >= self.exact_below // 2
            built = await self._pool.run(_build, keys, vectors, self.dim, self.dtype, to_graph)
            removed = 0
            async with self._lock:
                while self._log:
                    batch, self._log = self._log, []
                    if isinstance(built, Index):
                        removed += sum(1 for _, vector in batch if vector is None)
                        await self._pool.run(_apply_index, built, batch)
                    else:
                        _apply_exact(built, batch)
                self._log = None
                if isinstance(built, Index):
                    self._exact, self._index = None, built
                else:
                    self._exact, self._index = built, None
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
        """Wait until no rebuild is running (tests and benchmarks; requests never wait)."""
        while self._rebuild is not None:
            await asyncio.gather(asyncio.shield(self._rebuild), return_exceptions=True)

    def cancel(self) -> None:
        """Stop a running rebuild (the partition is being dropped)."""
        if self._rebuild is not None:
            self._rebuild.cancel()
            self._rebuild = None  # a task cancelled before it ran never reaches its finally
            self._log = None

    async def aclose(self) -> None:
        task = self._rebuild
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._rebuild = None
            self._log = None


def _apply_exact(target: ExactVectors, ops: list[_Op]) -> None:
    for key, vector in ops:
        if vector is None:
            target.remove(key)
        else:
            target.add(key, vector)


def _apply_index(index: Index, ops: list[_Op]) -> None:
    """Apply ops in order; runs of adds go in as one batch call (one pool hop, one mutex hold)."""
    keys: list[int] = []
    rows: list[np.ndarray] = []

    def flush() -> None:
        if keys:
            fresh: dict[int, int] = {}  # USearch raises on duplicate keys; the first add wins, as in ExactVectors
            for i, k in enumerate(keys):
                if k not in fresh and not index.contains(k):
                    fresh[k] = i
            if fresh:
                batch = np.fromiter(fresh, dtype=np.uint64, count=len(fresh))
                index.add(batch, np.stack([rows[i] for i in fresh.values()]), threads=1)
            keys.clear()
            rows.clear()

    for key, vector in ops:
        if vector is None:
            flush()
            index.remove(key)
        else:
            keys.append(key)
            rows.append(vector)
    flush()


def _search_index(index: Index, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
    if len(index) == 0:
        return []
    matches = index.search(vector, count)
    return [(int(k), 1.0 - float(d)) for k, d in zip(matches.keys, matches.distances, strict=True)]


def _get_vectors(index: Index, keys: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors of ``keys``, without the keys the graph no longer holds (USearch
    returns None for those; a zero row would enter the new graph as a real node)."""
    if len(keys) == 0:
        return keys, np.zeros((0, dim), dtype=np.float32)
    rows = index.get(keys, dtype="f32")
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        return keys, np.ascontiguousarray(rows, dtype=np.float32)
    found = [(i, row) for i, row in enumerate(rows or ()) if row is not None]
    out = np.zeros((len(found), dim), dtype=np.float32)
    for j, (_, row) in enumerate(found):
        out[j] = row
    return keys[[i for i, _ in found]], out


_EXPANSION_ADD = 64
"""64 instead of USearch's 128: inserts cost half (~150 µs f32 at 384-d on this
class of machine) at the same recall@1 for the near neighbours a cache looks for."""


def _build(
    keys: np.ndarray, vectors: np.ndarray, dim: int, dtype: DType, to_graph: bool
) -> Index | ExactVectors:
    if not to_graph:
        return ExactVectors(dim, keys, vectors)
    index = Index(
        ndim=dim, metric="cos", dtype=dtype, connectivity=16, expansion_add=_EXPANSION_ADD,
        expansion_search=64,
    )  # fmt: skip
    if len(keys):
        # threads=1: parallel inserts strand nodes (see the module docstring); ~1.3x slower on 2
        # cores, and this runs in the background anyway.
        index.add(keys, np.ascontiguousarray(vectors, dtype=np.float32), threads=1)
    return index
