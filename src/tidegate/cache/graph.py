"""USearch calls of the semantic tier's graphs, run in the worker pool (or briefly on the loop).

Every insert is single-threaded (``threads=1``): USearch's multi-threaded batch add races between
concurrent inserts and leaves some nodes stored but unreachable by search (unum-cloud/USearch#735,
~1 % of a 1k-vector build on 2 cores), i.e. cached answers that can never hit again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..embeddings import _native  # noqa: F401  (onnxruntime must load before usearch)
from .matrix import ExactVectors, Op

from usearch.index import Index  # isort: skip

__all__ = ["DType", "Index", "apply_index", "build", "get_vectors", "search_index"]

DType = Literal["f32", "f16", "i8"]


def apply_index(index: Index, ops: list[Op]) -> None:
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


def search_index(index: Index, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
    if len(index) == 0:
        return []
    matches = index.search(vector, count)
    return [(int(k), 1.0 - float(d)) for k, d in zip(matches.keys, matches.distances, strict=True)]


def get_vectors(index: Index, keys: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
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


def build(
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
