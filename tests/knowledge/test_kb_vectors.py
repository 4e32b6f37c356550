"""The USearch wrapper: exact and HNSW agree, filters over-fetch, every dtype/metric, safe views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tidegate.knowledge.vectors import VectorIndex


def _data(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _keys(n: int, start: int = 1) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.uint64)


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("metric", ["cos", "ip", "l2sq"])
def test_scores_are_cosines_whatever_the_metric(dtype: str, metric: str) -> None:
    data = _data(300)
    hnsw = VectorIndex(ndim=32, metric=metric, dtype=dtype, exact_below=0)  # type: ignore[arg-type]
    hnsw.add(_keys(300), data)
    found = hnsw.search(data[7], 5)
    assert found[0][0] == 8
    assert found[0][1] == pytest.approx(1.0, abs=0.02)
    expected = data @ data[7]
    for key, score in found:
        assert score == pytest.approx(float(expected[key - 1]), abs=0.03)


def test_exact_and_hnsw_return_the_same_neighbours_on_small_data() -> None:
    data = _data(500)
    exact = VectorIndex(ndim=32, exact_below=10_000)
    hnsw = VectorIndex(ndim=32, exact_below=0, expansion_search=200)
    for index in (exact, hnsw):
        index.add(_keys(500), data)
    query = _data(1, seed=9)[0]
    truth = (np.argsort(-(data @ query))[:10] + 1).tolist()
    assert [k for k, _ in exact.search(query, 10)] == truth
    assert len(set(k for k, _ in hnsw.search(query, 10)) & set(truth)) >= 9


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_filters_overfetch_until_enough_pass(exact_below: int) -> None:
    data = _data(2000)
    index = VectorIndex(ndim=32, exact_below=exact_below)
    index.add(_keys(2000), data)
    only = {k for k in range(1, 2001) if k % 97 == 0}  # 20 keys, far apart
    found = index.search(data[0], 5, accept=lambda key: key in only)
    assert len(found) == 5 and all(k in only for k, _ in found)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    assert index.search(data[0], 5, accept=lambda key: False) == []


def test_exact_snapshot_follows_changes() -> None:
    data = _data(50)
    index = VectorIndex(ndim=32)
    index.add(_keys(40), data[:40])
    assert index.search(data[45], 1)[0][0] != 46
    index.add(_keys(10, start=41), data[40:])
    assert index.search(data[45], 1)[0][0] == 46
    index.remove([46])
    assert index.search(data[45], 1)[0][0] != 46 and len(index) == 49


def test_adding_to_a_viewed_index_with_removals_does_not_crash(tmp_path: Path) -> None:
    # usearch segfaults when adding to a view of a file with removed entries; we copy first.
    data = _data(300)
    index = VectorIndex(ndim=32, exact_below=0)
    index.add(_keys(300), data)
    index.remove(list(range(1, 100)))
    path = str(tmp_path / "i.usearch")
    index.save(path)
    viewed = VectorIndex.open(path, view=True, metric="cos", dtype="f32", exact_below=0)
    assert viewed.viewed and len(viewed) == 201
    assert viewed.search(data[150], 1)[0][0] == 151
    viewed.add(_keys(5, start=1000), _data(5, seed=3))
    assert not viewed.viewed and len(viewed) == 206
    assert viewed.search(_data(5, seed=3)[2], 1)[0][0] == 1002
    # The file on disk was not touched.
    assert len(VectorIndex.open(path, view=True, metric="cos", dtype="f32")) == 201
