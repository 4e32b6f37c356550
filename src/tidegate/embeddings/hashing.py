"""The always-available embedder: signed feature hashing of character n-grams and words.

It needs nothing beyond numpy and gives stable vectors across processes and machines (no salted
``hash()``), so it suits tests, near-duplicate detection and lexical retrieval. It knows nothing
about meaning: "refund" and "money back" are unrelated to it. Use ``local`` or ``openai`` for that.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from .._concurrency import WorkerPool
from .base import BatchingEmbedder, InputKind

__all__ = ["HashEmbedder", "hash_vectors"]

_NGRAMS = (3, 4, 5)
_WORD_WEIGHT = 2.0
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads nearby n-gram hashes over all buckets."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = h ^ (h >> np.uint64(31))
    return out


def _ngram_hashes(data: np.ndarray, n: int) -> np.ndarray:
    length = data.shape[0] - n + 1
    if length <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.full(length, 0xCBF29CE484222325 ^ n, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for offset in range(n):
        h = (h ^ data[offset : offset + length]) * prime
    return _mix(h)


def _one(text: str, dim: int) -> np.ndarray:
    normal = _NON_WORD.sub(" ", text.lower()).strip()
    vec = np.zeros(dim, dtype=np.float64)
    if not normal:
        return vec.astype(np.float32)
    data = np.frombuffer(f" {normal} ".encode(), dtype=np.uint8).astype(np.uint64)
    parts = [_ngram_hashes(data, n) for n in _NGRAMS]
    grams = np.concatenate(parts)
    weights = np.ones(grams.shape[0], dtype=np.float64)
    words = normal.split()
    word_hashes = np.array([zlib.crc32(w.encode()) for w in words], dtype=np.uint64)
    grams = np.concatenate([grams, _mix(word_hashes ^ np.uint64(0x9E3779B97F4A7C15))])
    weights = np.concatenate([weights, np.full(len(words), _WORD_WEIGHT)])
    buckets = (grams % np.uint64(dim)).astype(np.intp)
    signs = np.where((grams >> np.uint64(63)) & np.uint64(1), -1.0, 1.0)
    vec += np.bincount(buckets, weights=signs * weights, minlength=dim)
    return vec.astype(np.float32)


def hash_vectors(texts: list[str], dim: int) -> np.ndarray:
    """Unnormalized hashed-feature vectors (the caller normalizes); pure CPU, run it in a pool."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        out[row] = _one(text, dim)
    return out


class HashEmbedder(BatchingEmbedder):
    """Lexical embedder over hashed char 3–5-grams and words (default 512 dimensions)."""

    default_threshold = 0.35
    inline_texts = 2
    """~60 µs a short text: cheaper on the loop than the ~100 µs thread round trip, which would be
    most of a cache miss's overhead. Bigger batches still leave the loop."""

    def __init__(self, name: str, *, pool: WorkerPool, dim: int = 512, **options: object) -> None:
        super().__init__(name, dim=dim, model_id=f"hash:{dim}", **options)  # type: ignore[arg-type]
        self._pool = pool

    def _embed_now(self, texts: list[str], kind: InputKind) -> np.ndarray:
        return hash_vectors(texts, self.dim)

    async def _embed_batch(self, texts: list[str], kind: InputKind) -> np.ndarray:
        if len(texts) <= self.inline_texts:
            return hash_vectors(texts, self.dim)
        return await self._pool.run(hash_vectors, texts, self.dim)
