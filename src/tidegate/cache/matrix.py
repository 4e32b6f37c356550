"""A growable matrix searched by brute force: small partitions, and a graph's not-yet-indexed tail.

A brute-force scan costs no insert, and on cache data (many near-identical questions) HNSW
visits many nodes: measured at 3,000 384-d vectors, an f32 HNSW search takes ~180 µs and an i8
one ~90 µs, plus ~90-250 µs per insert, while an f32 scan (einsum) takes ~160 µs. What a scan
reads matters beyond its own time, too: on a 2-core box, scanning 3,000 rows of float32 (4.6 MB)
or int8 (1.1 MB) before a request slowed the request's own code by ~0.1 ms, evicted from the CPU
caches; 3,000 sign bit-vectors (48 bytes a row) cost ~0.02 ms.

So each row is kept as float32 (exact similarities, rebuilds) and as its sign bits. A search
takes the rows nearest in Hamming distance (``numkong``'s popcount kernels, the library USearch
itself computes distances with: ~18 µs for 3,000 rows), then re-scores that shortlist exactly in
float32: reported similarities are exact. A near neighbour differs from the query in few signs,
so the shortlist holds it: on our labeled questions embedded with MiniLM among 4,000 others, the
best candidate after re-scoring was the exact best for 234 of 235 queries, and the one miss was a
near-tie at cosine 0.47, far below any hit threshold. Without ``numkong`` (or below twice the
shortlist) the float32 rows are scanned directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..embeddings import _native  # noqa: F401  (onnxruntime must load before usearch's kernels)

__all__ = ["ExactVectors", "Op", "apply_exact"]

Op = tuple[int, "np.ndarray | None"]
"""(key, vector) adds; (key, None) removes."""

_SHORTLIST = 64
"""Rows re-scored in float32 after the Hamming scan (at least 4 × k)."""

Hamming = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def _hamming_kernel() -> Hamming | None:
    """``numkong``'s bit Hamming distances (``out[0, i] = popcount(q ^ bits[i])``), if it is
    there and gives the right answer."""
    try:
        import numkong
    except ImportError:
        return None

    def hamming(query: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
        numkong.cdist(query, bits, metric="hamming", dtype="uint1", out=out)

    probe = np.array([[0b10110000, 255], [0, 0], [255, 255]], dtype=np.uint8)
    out = np.empty((1, 3), dtype=np.float32)
    try:
        hamming(probe[:1], probe, out)
    except Exception:  # an API change: fall back rather than fail
        return None
    return hamming if out[0].tolist() == [0.0, 11.0, 5.0] else None


_HAMMING = _hamming_kernel()


class ExactVectors:
    """Rows by key with swap-remove; searched by a sign-bit scan and an exact re-score."""

    __slots__ = ("_bits", "_keys", "_matrix", "_n", "_slots", "dim")

    def __init__(self, dim: int, keys: np.ndarray | None = None, matrix: np.ndarray | None = None) -> None:
        self.dim = dim
        count = 0 if keys is None else len(keys)
        capacity = max(2, count * 2)
        self._keys = np.empty(capacity, dtype=np.uint64)
        self._matrix = np.empty((capacity, dim), dtype=np.float32)
        self._bits = np.empty((capacity, (dim + 7) // 8), dtype=np.uint8)
        self._n = 0
        self._slots: dict[int, int] = {}
        if keys is not None and matrix is not None and count:  # a snapshot: unique keys
            self._keys[:count] = keys
            self._matrix[:count] = matrix
            self._bits[:count] = np.packbits(self._matrix[:count] > 0, axis=1)
            self._slots = {int(k): i for i, k in enumerate(keys)}
            self._n = count

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: int) -> bool:
        return key in self._slots

    @property
    def nbytes(self) -> int:
        return self._matrix.nbytes + self._bits.nbytes + self._keys.nbytes

    def add(self, key: int, vector: np.ndarray) -> None:
        """Add ``key`` (the first vector added for a key wins until it is removed)."""
        if key in self._slots:
            return
        if self._n == len(self._keys):
            self._keys = _grown(self._keys, self._n)
            self._matrix = _grown(self._matrix, self._n)
            self._bits = _grown(self._bits, self._n)
        slot = self._n
        self._keys[slot] = key
        self._matrix[slot] = vector
        self._bits[slot] = np.packbits(self._matrix[slot] > 0)
        self._slots[key] = slot
        self._n += 1

    def remove(self, key: int) -> bool:
        slot = self._slots.pop(key, None)
        if slot is None:
            return False
        last = self._n - 1
        if slot != last:
            moved = int(self._keys[last])
            self._keys[slot] = moved
            self._matrix[slot] = self._matrix[last]
            self._bits[slot] = self._bits[last]
            self._slots[moved] = slot
        self._n = last
        return True

    def vector(self, key: int) -> np.ndarray:
        row: np.ndarray = self._matrix[self._slots[key]].copy()
        return row

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self._keys[: self._n].copy(), self._matrix[: self._n].copy()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        n = self._n
        if n == 0:
            return []
        shortlist = max(4 * k, _SHORTLIST)
        if _HAMMING is None or n < 2 * shortlist:
            rows = None
            sims = _scan(self._matrix[:n], vector)
        else:
            query = np.packbits(np.asarray(vector) > 0)[None, :]
            distances = np.empty((1, n), dtype=np.float32)
            _HAMMING(query, self._bits[:n], distances)
            rows = np.argpartition(distances[0], shortlist)[:shortlist]
            sims = _scan(self._matrix[rows], vector)
        if len(sims) > k:
            top = np.argpartition(-sims, k)[:k]
            top = top[np.argsort(-sims[top])]
        else:
            top = np.argsort(-sims)
        slots = top if rows is None else rows[top]
        keys = self._keys
        return [(int(keys[s]), float(sims[t])) for s, t in zip(slots, top, strict=True)]


def _scan(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    # einsum, not BLAS: OpenBLAS threads a matrix-vector product this size and, on a busy
    # machine, waking its threads costs milliseconds on the event loop (measured: 8 ms p50 at
    # 3,000 rows with both cores loaded, against 0.16 ms for einsum).
    out: np.ndarray = np.einsum("ij,j->i", matrix, vector)
    return out


def _grown(array: np.ndarray, used: int) -> np.ndarray:
    out = np.empty((used * 2, *array.shape[1:]), dtype=array.dtype)
    out[:used] = array[:used]
    return out


def apply_exact(target: ExactVectors, ops: list[Op]) -> None:
    for key, vector in ops:
        if vector is None:
            target.remove(key)
        else:
            target.add(key, vector)
