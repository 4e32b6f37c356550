"""The semantic tier: questions by partition, found by normalized text or by embedding.

Entries are bounded in one LRU across all partitions (``max_entries``) and expire per entry: a
lookup skips what has expired (lazy), and :meth:`SemanticStore.sweep` removes it from the maps
and indexes in bounded steps (periodic). Empty partitions are dropped, so a million one-off
conversations leave nothing behind once they expire.

Within a partition, vectors are indexed by *signature*: what the trap guard requires to be equal
between two questions (their numbers, dates and negations, see
:attr:`~tidegate.cache.text.Features.signature`). A question is only compared with questions it
could be served from, so "where is order 1042?" searches the few questions about order 1042, not
ten thousand about other orders; and those ten thousand, nearer in meaning than any paraphrase,
can no longer crowd the right answer out of the nearest few and get refused one by one.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .._concurrency import WorkerPool
from .entry import Entry
from .graph import DType
from .vectors import PartitionIndex

__all__ = ["SemanticEntry", "SemanticStore"]

Evicted = Callable[[str, Entry], None]
_QUESTION_OVERHEAD = 200  # the SemanticEntry object, its slots and dict/heap references


class SemanticEntry:
    __slots__ = ("entry", "key", "norm", "partition", "question", "signature")

    def __init__(self, key: int, partition: bytes, question: str, norm: str, entry: Entry) -> None:
        self.key = key
        self.partition = partition
        self.question = question
        self.norm = norm
        self.entry = entry
        self.signature: str | None = None  # the index its vector is in; None: not in one (yet)

    @property
    def size(self) -> int:
        return self.entry.size + len(self.question) + len(self.norm) + _QUESTION_OVERHEAD


class _Partition:
    __slots__ = ("indexes", "norms", "unindexed")

    def __init__(self) -> None:
        self.norms: dict[str, int] = {}
        self.indexes: dict[str, PartitionIndex] = {}  # by signature
        self.unindexed: dict[int, SemanticEntry] = {}  # stored, their vector still to come


class SemanticStore:
    """``dim`` is None when no embedder is configured: then only the normalized tier works."""

    def __init__(
        self,
        *,
        max_entries: int,
        clock: Callable[[], float],
        pool: WorkerPool,
        dim: int | None = None,
        dtype: DType = "f32",
        exact_below: int = 1024,
        evicted: Evicted | None = None,
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._pool = pool
        self.dim = dim
        self.dtype: DType = dtype
        self.exact_below = exact_below
        self._on_evicted = evicted
        self._entries: OrderedDict[int, SemanticEntry] = OrderedDict()
        self._partitions: dict[bytes, _Partition] = {}
        self._expiry: list[tuple[float, int]] = []
        self._dirty: set[tuple[bytes, str]] = set()  # indexes whose graph has removals to apply
        self._next_key = 1  # USearch keys: never 0 (padding) nor 2**64-1
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def partitions(self) -> int:
        return len(self._partitions)

    @property
    def vector_bytes(self) -> int:
        return sum(index.nbytes for index in self._indexes())

    def _indexes(self) -> list[PartitionIndex]:
        return [index for part in self._partitions.values() for index in part.indexes.values()]

    # -- lookups ------------------------------------------------------------------------------

    def get_normalized(self, partition: bytes, norm: str) -> SemanticEntry | None:
        part = self._partitions.get(partition)
        if part is None:
            return None
        key = part.norms.get(norm)
        return self._live(key) if key is not None else None

    async def search(
        self, partition: bytes, vector: np.ndarray, k: int = 4, *, signature: str = ""
    ) -> list[tuple[SemanticEntry, float]]:
        """The ``k`` nearest live entries among those stored with ``signature``, best first."""
        part = self._partitions.get(partition)
        index = part.indexes.get(signature) if part is not None else None
        if index is None:
            return []
        found = await index.search(vector, k)
        out = []
        for key, similarity in found:
            item = self._live(key)
            if item is not None:
                out.append((item, similarity))
        return out

    def searchable(self, partition: bytes, signature: str) -> bool:
        """Whether a search of ``signature`` in ``partition`` has anything to find."""
        part = self._partitions.get(partition)
        index = part.indexes.get(signature) if part is not None else None
        return index is not None and len(index) > 0

    def unindexed(self, partition: bytes) -> list[SemanticEntry]:
        """Entries of ``partition`` stored by text whose vector has not gone in yet."""
        part = self._partitions.get(partition)
        return list(part.unindexed.values()) if part is not None and part.unindexed else []

    def expect_vector(self, item: SemanticEntry) -> None:
        """Note that ``item``'s vector comes later: until it does, a lookup in its partition
        embeds it too (so a paraphrase asked right after it is still found)."""
        part = self._partitions.get(item.partition)
        if part is not None and self._entries.get(item.key) is item and item.signature is None:
            part.unindexed[item.key] = item

    def no_vector(self, item: SemanticEntry) -> None:
        """``item``'s vector will not come (its embedding failed): it stays findable by text."""
        part = self._partitions.get(item.partition)
        if part is not None:
            part.unindexed.pop(item.key, None)

    def _live(self, key: int) -> SemanticEntry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item.entry.expires <= self._clock():
            self._remove(item, "ttl")
            return None
        return item

    def touch(self, item: SemanticEntry) -> None:
        """Mark as recently used (LRU order)."""
        if item.key in self._entries:
            self._entries.move_to_end(item.key)

    # -- mutations ----------------------------------------------------------------------------

    @property
    def indexed(self) -> bool:
        """Whether questions are also found by vector (an embedder is configured)."""
        return self.dim is not None

    def put_text(self, partition: bytes, question: str, norm: str, entry: Entry) -> SemanticEntry | None:
        """Store an entry found by its normalized text now; :meth:`put_vector` makes it findable
        by meaning too."""
        item, _ = self._insert(partition, question, norm, entry)
        return item

    def put_vector(self, item: SemanticEntry, vector: np.ndarray, signature: str = "") -> None:
        """Make ``item`` findable by meaning among the entries of the same ``signature``."""
        if self._entries.get(item.key) is not item or item.signature is not None:
            return  # evicted or replaced meanwhile (e.g. while it was embedded), or indexed already
        self.no_vector(item)  # it is here now
        index = self._index(item.partition, signature)
        if index is not None:
            item.signature = signature
            index.add(item.key, vector)

    def _index(self, partition: bytes, signature: str) -> PartitionIndex | None:
        part = self._partitions.get(partition)
        if part is None or self.dim is None:
            return None
        index = part.indexes.get(signature)
        if index is None:
            index = part.indexes[signature] = PartitionIndex(
                dim=self.dim, dtype=self.dtype, exact_below=self.exact_below, pool=self._pool
            )
        return index

    def put(
        self, partition: bytes, question: str, norm: str, vector: np.ndarray | None, entry: Entry,
        *, signature: str = "",
    ) -> SemanticEntry | None:  # fmt: skip
        item = self.put_text(partition, question, norm, entry)
        if item is not None and vector is not None:
            self.put_vector(item, vector, signature)
        return item

    async def put_many(
        self,
        partition: bytes,
        rows: list[tuple[str, str, np.ndarray | None, Entry]],
        *,
        signature: Callable[[str], str] | None = None,
    ) -> int:
        """Insert many entries into one partition with one batched update per index (prewarming);
        ``signature`` gives each question's (see :meth:`Tiers.signature`), else all share one."""
        batches: dict[str, tuple[list[SemanticEntry], list[np.ndarray]]] = {}
        inserted = 0
        for question, norm, vector, entry in rows:
            item, _ = self._insert(partition, question, norm, entry)
            if item is not None and vector is not None:
                inserted += 1
                items, vectors = batches.setdefault(signature(question) if signature else "", ([], []))
                items.append(item)
                vectors.append(vector)
        for sig, (items, vectors) in batches.items():
            live = [i for i, item in enumerate(items) if self._entries.get(item.key) is item]
            index = self._index(partition, sig)
            if not live or index is None:
                continue
            for i in live:
                items[i].signature = sig
            await index.add_many([items[i].key for i in live], np.stack([vectors[i] for i in live]))
        return inserted

    def _insert(
        self, partition: bytes, question: str, norm: str, entry: Entry
    ) -> tuple[SemanticEntry | None, _Partition | None]:
        if entry.expires <= self._clock():
            return None, None
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        old = part.norms.get(norm)
        key = self._next_key
        self._next_key += 1
        item = SemanticEntry(key, partition, question, norm, entry)
        self._entries[key] = item
        part.norms[norm] = key
        if old is not None and old in self._entries:
            # Removed after the insert, so the partition never empties (and is never dropped).
            self._remove(self._entries[old], "replaced")
        heapq.heappush(self._expiry, (entry.expires, key))
        self.bytes += item.size
        while len(self._entries) > self.max_entries:
            _, oldest = next(iter(self._entries.items()))
            self._remove(oldest, "lru")
        return (item if key in self._entries else None), part

    def remove(self, item: SemanticEntry) -> None:
        if self._entries.get(item.key) is item:
            self._remove(item, "removed")

    def _remove(self, item: SemanticEntry, reason: str) -> None:
        del self._entries[item.key]
        self.bytes -= item.size
        part = self._partitions.get(item.partition)
        if part is not None:
            if part.norms.get(item.norm) == item.key:
                del part.norms[item.norm]
            part.unindexed.pop(item.key, None)
            if item.signature is not None:
                index = part.indexes.get(item.signature)
                if index is not None:
                    index.discard(item.key)
                    if not len(index):
                        index.cancel()
                        del part.indexes[item.signature]
                        self._dirty.discard((item.partition, item.signature))
                    elif index.mode == "hnsw":
                        self._dirty.add((item.partition, item.signature))
            if not part.norms:
                for index in part.indexes.values():
                    index.cancel()
                del self._partitions[item.partition]
                self._dirty = {d for d in self._dirty if d[0] != item.partition} if self._dirty else self._dirty
        if self._on_evicted is not None and reason in ("ttl", "lru"):
            self._on_evicted(reason, item.entry)

    async def sweep(self, *, limit: int = 10_000) -> int:
        """Remove up to ``limit`` expired entries; then let graphs drop their removed nodes."""
        now = self._clock()
        heap = self._expiry
        removed = 0
        while heap and heap[0][0] <= now and removed < limit:
            expires, key = heapq.heappop(heap)
            item = self._entries.get(key)
            if item is not None and item.entry.expires == expires:
                self._remove(item, "ttl")
                removed += 1
        if len(heap) > 2 * len(self._entries) + 1024:
            self._expiry = [(e, k) for e, k in heap if k in self._entries]
            heapq.heapify(self._expiry)
        dirty, self._dirty = self._dirty, set()
        for name, sig in dirty:
            part = self._partitions.get(name)
            index = part.indexes.get(sig) if part is not None else None
            if index is not None:
                await index.flush()
        return removed

    async def settle(self) -> None:
        """Wait for background index rebuilds to finish (tests and benchmarks)."""
        for index in self._indexes():
            await index.settle()

    async def aclose(self) -> None:
        for index in self._indexes():
            await index.aclose()
        self._partitions.clear()
        self._entries.clear()
        self._expiry.clear()
        self.bytes = 0
