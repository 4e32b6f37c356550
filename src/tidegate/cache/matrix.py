"""A growable matrix searched by brute force: small partitions, and a graph's not-yet-indexed tail.

A brute-force scan costs no insert, and on cache data (many near-identical questions) HNSW
visits many nodes: measured at 3,000 384-d vectors, an f32 HNSW search takes ~180 µs and an i8
one ~90 µs, plus ~90-250 µs per insert, while an f32 scan (einsum) takes ~160 µs. What a scan
reads matters beyond its own time, too: on a 2-core box, scanning 3,000 rows of float32 (4.6 MB)
or int8 (1.1 MB) before a request slowed the request's own code by ~0.1 ms, evicted from the CPU
caches; 3,000 sign bit-vectors (48 bytes a row) cost ~0.02 ms.

So each row is kept as float32 (exact similarities, rebuilds) and as its sign bits. A search
takes the rows nearest in Hamming distance (``numkong``'s popcount kernels, the library USearch
itself computes distances with), then re-scores that shortlist exactly in float32: reported
similarities are exact. A near neighbour differs from the query in few signs, so the shortlist
holds it: on our labeled questions embedded with MiniLM among 4,000 others, the best candidate
after re-scoring was the exact best for 234 of 235 queries, and the one miss was a near-tie at
cosine 0.47, far below any hit threshold. Without ``numkong`` (or below twice the shortlist) the
float32 rows are scanned directly.

The bits are scanned from a copy numkong has packed for its kernel (4× faster than its plain
``cdist``: ~11 µs against ~40 µs for 3,000 rows), plus the rows added since, which ``cdist``
scans. The copy is remade when those rows pile up or a removal changed a packed row, so a search
always sees every row as it is. Distances are selected as 16-bit integers: numpy's partition is
~4× faster on them than on 32-bit ones (~7 µs against ~30 µs for 3,000 rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embeddings import _native  # noqa: F401  (onnxruntime must load before usearch's kernels)

__all__ = ["ExactVectors", "Op", "apply_exact"]

Op = tuple[int, "np.ndarray | None"]
"""(key, vector) adds; (key, None) removes."""

_SHORTLIST = 64
"""Rows re-scored in float32 after the Hamming scan (at least 4 × k)."""

_UNPACKED = 256
"""Rows added since the packed copy was made that a search scans unpacked, before it is remade
(or an eighth of the packed rows, if more): remaking 3,000 rows takes ~30 µs."""


class _Kernels:
    """numkong's bit-Hamming kernels, checked once against known distances."""

    def __init__(self, numkong: Any) -> None:
        self._nk = numkong

    def scan(self, query: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
        """``out[0, i] = popcount(query ^ bits[i])`` (``out`` a uint32 row)."""
        self._nk.cdist(query, bits, metric="hamming", dtype="uint1", out=out)

    def pack(self, bits: np.ndarray) -> Any:
        return self._nk.hammings_pack(bits, dtype="uint1")

    def target(self, out: np.ndarray) -> Any:
        """A numkong view of the numpy row ``out``, for :meth:`packed` to write into."""
        return self._nk.from_pointer(out.ctypes.data, out.shape, "uint32", owner=out)

    def packed(self, query: np.ndarray, packed: Any, target: Any) -> None:
        self._nk.hammings_packed(query, packed, out=target)


def _kernels() -> _Kernels | None:
    """The kernels if numkong is there and gives the right answers (an API change, or a build
    without them, falls back to scanning float32 rows rather than failing)."""
    try:
        import numkong
    except ImportError:
        return None
    kernels = _Kernels(numkong)
    probe = np.array([[0b10110000, 255], [0, 0], [255, 255]], dtype=np.uint8)
    expected = [0, 11, 5]
    try:
        scanned = np.zeros((1, 3), dtype=np.uint32)
        kernels.scan(probe[:1], probe, scanned)
        packed = np.zeros((1, 3), dtype=np.uint32)
        kernels.packed(probe[:1], kernels.pack(probe), kernels.target(packed))
    except Exception:
        return None
    if scanned[0].tolist() != expected or packed[0].tolist() != expected:
        return None
    return kernels


_KERNELS = _kernels()
_NO_DISTANCES = np.empty(0, dtype=np.uint32)  # shared until a search packs (replaced, never written)


class ExactVectors:
    """Rows by key with swap-remove; searched by a sign-bit scan and an exact re-score."""

    __slots__ = ("_bits", "_distances", "_keys", "_matrix", "_n", "_packed", "_packed_rows", "_slots", "_target", "dim")

    def __init__(self, dim: int, keys: np.ndarray | None = None, matrix: np.ndarray | None = None) -> None:
        self.dim = dim
        count = 0 if keys is None else len(keys)
        capacity = count * 2  # empty until the first add: most signatures hold one question
        self._keys = np.empty(capacity, dtype=np.uint64)
        self._matrix = np.empty((capacity, dim), dtype=np.float32)
        self._bits = np.empty((capacity, (dim + 7) // 8), dtype=np.uint8)
        self._n = 0
        self._slots: dict[int, int] = {}
        self._packed: Any = None  # numkong's packed copy of bits[:_packed_rows], or None: remake
        self._packed_rows = 0
        self._distances = _NO_DISTANCES
        self._target: Any = None  # _distances[:_packed_rows], as the packed kernel's output
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
        packed = self._packed_rows * self._bits.shape[1] if self._packed is not None else 0
        return self._matrix.nbytes + self._bits.nbytes + self._keys.nbytes + packed + self._distances.nbytes

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
        if slot < self._packed_rows:
            self._packed = None  # the packed copy no longer matches bits[slot]
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
        if _KERNELS is None or n < 2 * shortlist:
            rows = None
            sims = _scan(self._matrix[:n], vector)
        else:
            query = np.packbits(vector > 0)[None, :]
            rows = _nearest_rows(self._hamming(_KERNELS, query), shortlist)
            sims = _scan(self._matrix[rows], vector)
        top = np.argsort(sims)[: -k - 1 : -1]  # the k best, best first
        slots = top if rows is None else rows[top]
        return list(zip(self._keys[slots].tolist(), sims[top].tolist(), strict=True))

    def _hamming(self, kernels: _Kernels, query: np.ndarray) -> np.ndarray:
        """Distances from ``query`` to every row, as uint16 (the fast partition)."""
        n, packed = self._n, self._packed_rows
        if self._packed is None or n > len(self._distances) or n - packed > max(_UNPACKED, packed >> 3):
            self._pack()
            packed = n
        distances = self._distances
        kernels.packed(query, self._packed, self._target)
        if n > packed:
            kernels.scan(query, self._bits[packed:n], distances[None, packed:n])
        return distances[:n].astype(np.uint16)

    def _pack(self) -> None:
        assert _KERNELS is not None
        n = self._n
        self._packed = _KERNELS.pack(self._bits[:n])
        self._packed_rows = n
        self._distances = np.empty(len(self._keys), dtype=np.uint32)
        self._target = _KERNELS.target(self._distances[None, :n])


def _nearest_rows(distances: np.ndarray, count: int) -> np.ndarray:
    """Rows of the ``count`` smallest distances and of any tied with the last, in row order
    (rarely more than twice ``count``: then ``count`` of them).

    Hamming distances are small integers, so a histogram finds the cut: it has no branches to
    mispredict, where argpartition on 3,000 distances of varying queries took ~22 µs (~7 µs on
    the same distances again and again, the branch predictor having learnt them); this takes
    ~10 µs. Rows in order also read the float32 matrix front to back for the re-score.
    """
    cut = int(np.searchsorted(np.cumsum(np.bincount(distances)), count))
    rows: np.ndarray = np.flatnonzero(distances <= cut)
    if len(rows) > 2 * count:
        rows = rows[np.argpartition(distances[rows], count)[:count]]
    return rows


def _scan(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    # einsum, not BLAS: OpenBLAS threads a matrix-vector product this size and, on a busy
    # machine, waking its threads costs milliseconds on the event loop (measured: 8 ms p50 at
    # 3,000 rows with both cores loaded, against 0.16 ms for einsum).
    out: np.ndarray = np.einsum("ij,j->i", matrix, vector)
    return out


def _grown(array: np.ndarray, used: int) -> np.ndarray:
    out = np.empty((max(1, used * 2), *array.shape[1:]), dtype=array.dtype)
    out[:used] = array[:used]
    return out


def apply_exact(target: ExactVectors, ops: list[Op]) -> None:
    for key, vector in ops:
        if vector is None:
            target.remove(key)
        else:
            target.add(key, vector)
