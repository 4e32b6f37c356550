"""A growable matrix searched by brute force: small partitions, and a graph's not-yet-indexed tail.

A brute-force scan costs no insert, and on cache data (many near-identical questions) HNSW
visits many nodes: measured at 3,000 384-d vectors, an f32 scan (einsum) takes ~160 µs, an i8
HNSW search ~90 µs plus ~90 µs per insert, and a scan of int8 codes with the SIMD kernels of
``numkong`` (the library USearch itself computes distances with) ~40 µs. Reading fewer bytes
also matters beyond the scan itself: on a 2-core box a 4.6 MB f32 scan slowed the request code
that ran after it by ~0.1 ms, evicting it from the CPU caches.

So rows are kept twice: as float32 (exact similarities, rebuilds) and as int8 codes with a scale
per row. A search scans the codes, then re-scores a shortlist exactly in float32, so reported
similarities are exact and the ranking is exact up to ties the int8 codes cannot tell apart.
Without ``numkong`` (or below ``_SCAN_CODES_FROM`` rows) the float32 rows are scanned directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..embeddings import _native  # noqa: F401  (onnxruntime must load before usearch's kernels)

__all__ = ["ExactVectors", "Op", "apply_exact"]

Op = tuple[int, "np.ndarray | None"]
"""(key, vector) adds; (key, None) removes."""

_SCAN_CODES_FROM = 256
"""Below this many rows the float32 scan is as cheap as the int8 one plus its re-scoring."""

_SHORTLIST = 32
"""Rows re-scored in float32 after the int8 scan (at least 4 × k)."""

Dots = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def _int8_dots() -> Dots | None:
    """``numkong``'s int8 dot products (``out[0, i] = q · codes[i]``), if it is there and right."""
    try:
        import numkong
    except ImportError:
        return None

    def dots(query: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
        numkong.cdist(query, codes, metric="dot", out=out)

    probe = np.array([[3, -4, 5], [-128, 127, 1]], dtype=np.int8)
    out = np.empty((1, 2), dtype=np.float32)
    try:
        dots(probe[:1], probe, out)
    except Exception:  # an API change: fall back rather than fail
        return None
    expected = probe.astype(np.int32) @ probe[0].astype(np.int32)
    return dots if np.array_equal(out[0], expected.astype(np.float32)) else None


_DOTS = _int8_dots()


def _quantize_into(vector: np.ndarray, code: np.ndarray) -> float:
    """One row's codes written into ``code``; returns its scale (the per-request path)."""
    peak = float(np.abs(vector).max()) if vector.size else 0.0
    if peak == 0.0:
        code[:] = 0
        return 0.0
    np.rint(vector * (127.0 / peak), out=code, casting="unsafe")
    return peak / 127.0


def _quantize(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes of each row, scaled so its largest component is ±127, and the factors that
    undo the scaling (0 for a zero row)."""
    peaks = np.max(np.abs(rows), axis=1) if rows.shape[1] else np.zeros(len(rows), np.float32)
    safe = np.where(peaks > 0, peaks, 1.0)
    codes = np.rint(rows * (127.0 / safe)[:, None]).astype(np.int8)
    return codes, (peaks / 127.0).astype(np.float32)


class ExactVectors:
    """Rows by key with swap-remove; searched by one matrix-vector product."""

    __slots__ = ("_codes", "_keys", "_matrix", "_n", "_scales", "_slots", "dim")

    def __init__(self, dim: int, keys: np.ndarray | None = None, matrix: np.ndarray | None = None) -> None:
        self.dim = dim
        count = 0 if keys is None else len(keys)
        capacity = max(2, count * 2)
        self._keys = np.empty(capacity, dtype=np.uint64)
        self._matrix = np.empty((capacity, dim), dtype=np.float32)
        self._codes = np.empty((capacity, dim), dtype=np.int8)
        self._scales = np.empty(capacity, dtype=np.float32)
        self._n = 0
        self._slots: dict[int, int] = {}
        if keys is not None and matrix is not None and count:  # a snapshot: unique keys
            self._keys[:count] = keys
            self._matrix[:count] = matrix
            self._codes[:count], self._scales[:count] = _quantize(self._matrix[:count])
            self._slots = {int(k): i for i, k in enumerate(keys)}
            self._n = count

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: int) -> bool:
        return key in self._slots

    @property
    def nbytes(self) -> int:
        return self._matrix.nbytes + self._codes.nbytes + self._scales.nbytes + self._keys.nbytes

    def add(self, key: int, vector: np.ndarray) -> None:
        """Add ``key`` (the first vector added for a key wins until it is removed)."""
        if key in self._slots:
            return
        if self._n == len(self._keys):
            self._keys = _grown(self._keys, self._n)
            self._matrix = _grown(self._matrix, self._n)
            self._codes = _grown(self._codes, self._n)
            self._scales = _grown(self._scales, self._n)
        slot = self._n
        self._keys[slot] = key
        self._matrix[slot] = vector
        self._scales[slot] = _quantize_into(self._matrix[slot], self._codes[slot])
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
            self._codes[slot] = self._codes[last]
            self._scales[slot] = self._scales[last]
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
        if _DOTS is None or n < max(_SCAN_CODES_FROM, 2 * shortlist):
            rows = None
            sims = _scan(self._matrix[:n], vector)
        else:
            code = np.empty((1, self.dim), dtype=np.int8)
            _quantize_into(np.asarray(vector, dtype=np.float32), code[0])
            approx = np.empty((1, n), dtype=np.float32)
            _DOTS(code, self._codes[:n], approx)
            approx = approx[0] * self._scales[:n]  # ∝ cosine; the query's own scale is common
            rows = np.argpartition(-approx, shortlist)[:shortlist]
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
