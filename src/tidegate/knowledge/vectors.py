"""The vector side of a knowledge base: a USearch HNSW index plus exact search for small sizes.

All methods are blocking and meant for the worker pool. USearch serialises calls on one index
behind its own mutex and releases the GIL, so concurrent searches from several pool threads are
safe (and queue on the index). The exact path keeps a float32 copy of the vectors built on first
use and dropped on any change; a snapshot is swapped in whole, so a search that captured the old
one finishes on consistent data.

Scores are cosine similarities for every metric (vectors are L2-normalized): ``1 - d`` for
``cos``/``ip`` distances and ``1 - d/2`` for ``l2sq``. That keeps thresholds meaningful whatever
the metric.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import numpy as np

# isort: off
from ..embeddings import _native  # noqa: F401  (must come before usearch: see its docstring)
from usearch.index import Index
# isort: on

from ..errors import UsageError

__all__ = ["VectorIndex"]

Metric = Literal["cos", "ip", "l2sq"]
DType = Literal["f32", "f16", "i8"]


class VectorIndex:
    def __init__(
        self,
        *,
        ndim: int,
        metric: Metric = "cos",
        dtype: DType = "f32",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        exact_below: int = 10_000,
        index: Index | None = None,
        viewed: bool = False,
        path: str | None = None,
    ) -> None:
        self.ndim = ndim
        self.metric = metric
        self.dtype = dtype
        self.exact_below = exact_below
        # usearch's i8 `ip` and `l2sq` distances come in quantized units, not 1 - dot; on unit
        # vectors every metric ranks alike, so i8 indexes are stored as `cos`.
        self._stored_metric: Metric = "cos" if dtype == "i8" else metric
        self._options = {
            "connectivity": connectivity, "expansion_add": expansion_add,
            "expansion_search": expansion_search,
        }  # fmt: skip
        self.index = index if index is not None else self._new_index()
        self.viewed = viewed
        self.path = path
        self._version = 0
        self._snapshot: tuple[int, np.ndarray, np.ndarray] | None = None
        self._snapshot_lock = threading.Lock()

    def _new_index(self) -> Index:
        # dtype always explicit: the default follows the CPU, so files would differ by machine.
        return Index(
            ndim=self.ndim, metric=self._stored_metric, dtype=self.dtype,
            connectivity=self._options["connectivity"],
            expansion_add=self._options["expansion_add"],
            expansion_search=self._options["expansion_search"],
        )  # fmt: skip

    @classmethod
    def open(
        cls, path: str, *, view: bool, metric: Metric, dtype: DType, expansion_search: int = 64,
        exact_below: int = 10_000, connectivity: int = 16, expansion_add: int = 128,
    ) -> VectorIndex:  # fmt: skip
        index = Index.restore(path, view=view)
        if index is None:
            raise UsageError(f"Expected a USearch index file at `{path}`")
        index.expansion_search = expansion_search  # type: ignore[misc]  # it has a setter
        return cls(
            ndim=index.ndim, metric=metric, dtype=dtype, connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search,
            exact_below=exact_below, index=index, viewed=view, path=path,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.index)

    # -- changes --------------------------------------------------------------------------

    def _writable(self) -> None:
        # Adding to a memory-mapped index crashes the process when the file had removals:
        # copy it into memory first (the file stays untouched).
        if self.viewed:
            loaded = Index.restore(self.path, view=False) if self.path else None
            self.index = loaded if loaded is not None else self.index.copy()
            self.index.expansion_search = self._options["expansion_search"]  # type: ignore[misc]
            self.viewed = False

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self._writable()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # One insert thread: USearch's parallel batch add can leave nodes stored but unreachable
        # by search (unum-cloud/USearch#735, seen here as ~1 % of a 1k build with 2 threads).
        # It also keeps a core free for the event loop. Searches may still use threads.
        self.index.add(np.ascontiguousarray(keys, dtype=np.uint64), vectors, threads=1)
        self._version += 1

    def remove(self, keys: list[int]) -> None:
        if not keys:
            return
        self._writable()
        self.index.remove(np.asarray(keys, dtype=np.uint64))
        self._version += 1

    def save(self, path: str) -> None:
        self.index.save(path)

    def vectors(self, keys: list[int]) -> np.ndarray:
        """Stored vectors (dequantized to float32) of ``keys``, in order."""
        if not keys:
            return np.empty((0, self.ndim), np.float32)
        got = self.index.get(np.asarray(keys, dtype=np.uint64), dtype="f32")
        return np.asarray(got, dtype=np.float32).reshape(len(keys), self.ndim)

    # -- search ---------------------------------------------------------------------------

    def search(
        self, query: np.ndarray, count: int, *, accept: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``count`` ``(key, score)`` best first, keeping only keys ``accept`` allows.

        USearch has no filtered search, so filters over-fetch: ask for more, filter, and grow
        the request until enough survive or the whole index was seen.
        """
        size = len(self.index)
        if size == 0 or count <= 0:
            return []
        exact = size <= self.exact_below
        want = count if accept is None else count * 4
        while True:
            want = min(want, size)
            found = self._exact(query, want) if exact else self._hnsw(query, want)
            if accept is not None:
                found = [(key, score) for key, score in found if accept(key)]
            if len(found) >= count or want >= size:
                return found[:count]
            want *= 4

    def _hnsw(self, query: np.ndarray, count: int) -> list[tuple[int, float]]:
        matches = self.index.search(np.ascontiguousarray(query, dtype=np.float32), count)
        keys = matches.keys[: len(matches)]
        scores = self._scores(np.asarray(matches.distances[: len(matches)], dtype=np.float32))
        return list(zip(keys.tolist(), scores.tolist(), strict=True))

    def _exact(self, query: np.ndarray, count: int) -> list[tuple[int, float]]:
        keys, matrix = self._matrix()
        scores = matrix @ np.asarray(query, dtype=np.float32)
        if count < len(scores):
            top = np.argpartition(-scores, count - 1)[:count]
        else:
            top = np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return list(zip(keys[top].tolist(), scores[top].tolist(), strict=True))

    def _matrix(self) -> tuple[np.ndarray, np.ndarray]:
        snapshot = self._snapshot
        if snapshot is not None and snapshot[0] == self._version:
            return snapshot[1], snapshot[2]
        with self._snapshot_lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot[0] != self._version:
                # Read the version first: a change landing mid-build leaves a stale tag behind,
                # and the next search rebuilds.
                version = self._version
                keys = np.asarray(self.index.keys, dtype=np.uint64)
                matrix = self.vectors(keys.tolist())
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                np.maximum(norms, 1e-12, out=norms)
                snapshot = (version, keys, np.ascontiguousarray(matrix / norms, dtype=np.float32))
                self._snapshot = snapshot
            return snapshot[1], snapshot[2]

    def _scores(self, distances: np.ndarray) -> np.ndarray:
        if self._stored_metric == "l2sq":
            return 1.0 - distances / 2.0
        return 1.0 - distances

    def score_keys(self, query: np.ndarray, keys: list[int]) -> list[float]:
        """Cosine of ``query`` with stored vectors (for keyword-only candidates in hybrid)."""
        matrix = self.vectors(keys)
        norms = np.linalg.norm(matrix, axis=1)
        np.maximum(norms, 1e-12, out=norms)
        scores = (matrix @ np.asarray(query, dtype=np.float32)) / norms
        return [float(s) for s in scores]
