from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tidegate.routing.head import Head, fit_head


def blobs(seed: int = 0, n: int = 200, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    center = np.random.default_rng(1234).normal(size=dim)  # same classes for every sample
    rng = np.random.default_rng(seed)
    hard = rng.normal(size=(n // 2, dim)) * 0.6 + center
    easy = rng.normal(size=(n // 2, dim)) * 0.6 - center
    x = np.vstack([hard, easy]).astype(np.float32)
    y = np.array([True] * (n // 2) + [False] * (n // 2))
    return x, y


@pytest.mark.parametrize("kind", ["knn", "logistic"])
def test_heads_separate_separable_classes(kind: str) -> None:
    x, y = blobs()
    head = fit_head(x, y, kind=kind)  # type: ignore[arg-type]
    test_x, test_y = blobs(seed=1)
    predictions = head.predict_many(test_x)
    accuracy = float(np.mean((predictions > 0.5) == test_y))
    assert accuracy > 0.95
    assert np.all((predictions >= 0.0) & (predictions <= 1.0))


def test_knn_weights_a_near_duplicate_most() -> None:
    x = np.eye(4, dtype=np.float32)
    head = fit_head(x, [True, False, False, False], kind="knn", k=4)
    assert head.predict([1.0, 0.01, 0.0, 0.0]) > 0.9
    assert head.predict([0.0, 1.0, 0.0, 0.0]) < 0.1


@pytest.mark.parametrize("kind", ["knn", "logistic"])
def test_save_and_load_round_trip(tmp_path: Path, kind: str) -> None:
    x, y = blobs(dim=8)
    head = fit_head(x, y, kind=kind)  # type: ignore[arg-type]
    path = tmp_path / "head.npz"
    head.save(path)
    loaded = Head.load(path)
    assert loaded.kind == kind and loaded.dim == 8
    probe = x[:5]
    assert np.allclose(head.predict_many(probe), loaded.predict_many(probe), atol=1e-6)


def test_load_rejects_other_format_versions(tmp_path: Path) -> None:
    path = tmp_path / "future.npz"
    np.savez(path, version=np.array(99), kind=np.array("knn"))
    with pytest.raises(ValueError, match="format version 1, got 99"):
        Head.load(path)


def test_dimension_mismatch_and_bad_inputs() -> None:
    x, y = blobs(dim=8)
    head = fit_head(x, y)
    with pytest.raises(ValueError, match="dimension 8, got 3"):
        head.predict([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one label per embedding"):
        fit_head(x, y[:-1])
    with pytest.raises(ValueError):
        Head("knn", dim=3)
    assert 0.0 <= head.predict(np.zeros(8)) <= 1.0  # a zero vector is not a crash
