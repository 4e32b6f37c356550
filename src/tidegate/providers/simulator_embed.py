"""Simulated embeddings: deterministic unit vectors that still carry a little meaning.

Each text's vector is the normalised sum of hashed vectors of its words and word pairs, so the same
text always maps to the same vector, texts sharing most words land close together and unrelated
texts are nearly orthogonal. That is enough for semantic-cache and retrieval tests to see hits and
misses without a real model. Word vectors are cached per embedder (bounded), so repeated
vocabulary costs a dict lookup.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re

import numpy as np
from cachetools import LRUCache

__all__ = ["HashEmbedder"]

_TOKEN = re.compile(r"\w+")
_PAIR_WEIGHT = np.float32(0.5)


class HashEmbedder:
    """Turns texts into float32 unit vectors of a given dimension, deterministically per seed."""

    __slots__ = ("_cache", "_salt")

    def __init__(self, *, seed: int = 0, max_cached: int = 50_000) -> None:
        self._salt = f"{seed}:".encode()
        self._cache: LRUCache[tuple[str, int], np.ndarray] = LRUCache(maxsize=max_cached)

    def _feature(self, feature: str, dim: int) -> np.ndarray:
        key = (feature, dim)
        vec = self._cache.get(key)
        if vec is None:
            raw = hashlib.shake_256(self._salt + feature.encode()).digest(2 * dim)
            vec = np.frombuffer(raw, dtype="<i2").astype(np.float32)
            self._cache[key] = vec
        return vec

    def vector(self, text: str, dim: int) -> np.ndarray:
        words = _TOKEN.findall(text.lower())
        if not words:
            vec = self._feature("\x00" + text, dim).copy()
        else:
            vec = np.zeros(dim, dtype=np.float32)
            for word in words:
                vec += self._feature(word, dim)
            for first, second in itertools.pairwise(words):
                vec += _PAIR_WEIGHT * self._feature(first + " " + second, dim)
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec = np.ones(dim, dtype=np.float32)
            norm = float(np.sqrt(dim))
        vec /= norm
        return vec

    def encode(self, text: str, dim: int, *, as_base64: bool) -> list[float] | str:
        """One embedding in the wire form OpenAI's ``encoding_format`` asks for."""
        vec = self.vector(text, dim)
        if as_base64:
            return base64.b64encode(vec.astype("<f4").tobytes()).decode()
        out: list[float] = vec.tolist()
        return out
