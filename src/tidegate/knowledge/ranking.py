"""Turning a query vector (and its text) into ranked chunk keys: filters, hybrid blending.

Runs on a pool thread. It reads the base's dicts without a lock: CPython dict reads are atomic,
and a key that vanished mid-search is dropped by the caller when it maps keys back to chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..config.knowledge import HybridConfig
from .bm25 import BM25Index
from .store import ChunkRecord, DocRecord
from .vectors import VectorIndex

__all__ = ["Ranked", "make_filter", "rank"]

Ranked = tuple[int, float, float | None, float | None]
"""``(key, score, vector score, keyword score)``."""


def rank(
    query: str,
    vector: np.ndarray,
    k: int,
    vectors: VectorIndex,
    bm25: BM25Index | None,
    accept: Callable[[int], bool] | None,
    blend: HybridConfig | None,
) -> list[Ranked]:
    """The ``k`` best keys. With ``blend``, BM25 scores (scaled so the best is 1) are mixed with
    cosines like Dify's weighted score; keyword-only candidates get their cosine looked up."""
    if blend is None or bm25 is None:
        return [(key, s, s, None) for key, s in vectors.search(vector, k, accept=accept)]
    fetch = max(4 * k, 20)
    by_vector = dict(vectors.search(vector, fetch, accept=accept))
    by_keyword = dict(bm25.search(query, fetch * 4))
    if accept is not None:
        by_keyword = {key: s for key, s in by_keyword.items() if accept(key)}
    best = max(by_keyword.values(), default=0.0)
    keyword = {key: s / best for key, s in by_keyword.items()} if best > 0 else {}
    missing = [key for key in keyword if key not in by_vector]
    if missing:
        by_vector.update(zip(missing, vectors.score_keys(vector, missing), strict=True))
    total = blend.vector_weight + blend.keyword_weight
    wv, wk = blend.vector_weight / total, blend.keyword_weight / total
    scored: list[Ranked] = [
        (key, wv * v + wk * keyword.get(key, 0.0), v, keyword.get(key, 0.0))
        for key, v in by_vector.items()
    ]
    scored.sort(key=lambda item: item[1], reverse=True)
    return scored[:k]


def make_filter(
    filters: dict[str, Any], chunks: dict[int, ChunkRecord], docs: dict[str, DocRecord]
) -> Callable[[int], bool]:
    """A key predicate: each filter names a field of the document's metadata (or ``doc_id``,
    ``title``, ``source``, ``section``) and a value, or a list of accepted values."""
    wanted = {
        name: (set(v) if isinstance(v, list | tuple | set | frozenset) else {v})
        for name, v in filters.items()
    }

    def accept(key: int) -> bool:
        chunk = chunks.get(key)
        doc = docs.get(chunk.doc_id) if chunk is not None else None
        if chunk is None or doc is None:
            return False
        for name, values in wanted.items():
            if name == "doc_id":
                value: Any = doc.doc_id
            elif name == "title":
                value = doc.title
            elif name == "source":
                value = doc.source
            elif name == "section":
                value = chunk.section
            else:
                value = doc.metadata.get(name)
            if isinstance(value, list):
                if not any(_hashable(v) in values for v in value):
                    return False
            elif _hashable(value) not in values:
                return False
        return True

    return accept


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else str(value)
