"""Optional learned head: P(strong model needed) from a prompt embedding.

Fitted on a user's labeled prompts, applied to the embedding the semantic cache already computed,
so it costs a dot product (logistic) or one matrix-vector product over the examples (kNN; ~0.1 ms
for a few thousand 384-d examples) and no extra model call. Files are ``.npz`` with a format
``version`` so later heads keep loading older files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Head", "HeadKind", "fit_head"]

HeadKind = Literal["knn", "logistic"]
_FORMAT_VERSION = 1

Vector = npt.NDArray[np.float32]


def _normalize(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class Head:
    """Predicts the probability that a prompt needs the strong tier (label 1 = light not ok)."""

    __slots__ = ("bias", "dim", "examples", "k", "kind", "labels", "weights")

    def __init__(
        self,
        kind: HeadKind,
        *,
        dim: int,
        weights: Vector | None = None,
        bias: float = 0.0,
        examples: Vector | None = None,
        labels: npt.NDArray[np.float32] | None = None,
        k: int = 15,
    ) -> None:
        if kind == "logistic" and weights is None:
            raise ValueError("Expected `weights` for a logistic head, got None")
        if kind == "knn" and (examples is None or labels is None or len(examples) == 0):
            raise ValueError("Expected labeled `examples` for a kNN head, got none")
        self.kind = kind
        self.dim = dim
        self.weights = weights
        self.bias = float(bias)
        self.examples = examples
        self.labels = labels
        self.k = k

    def __repr__(self) -> str:
        size = 0 if self.examples is None else len(self.examples)
        return f"Head(kind={self.kind!r}, dim={self.dim}, examples={size})"

    def predict(self, vector: Sequence[float] | npt.NDArray[np.floating]) -> float:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dim:
            raise ValueError(f"Expected an embedding of dimension {self.dim}, got {query.shape[0]}")
        norm = float(np.linalg.norm(query))
        if norm > 0.0:
            query = query / norm
        if self.weights is not None:
            z = float(query @ self.weights) + self.bias
            return float(1.0 / (1.0 + np.exp(-z))) if z > -500 else 0.0
        if self.examples is None or self.labels is None:  # unreachable: __init__ checks
            raise ValueError("Expected a logistic or kNN head, got neither")
        sims = self.examples @ query
        k = min(self.k, len(sims))
        nearest = np.argpartition(-sims, k - 1)[:k]
        # Similarity-weighted vote, so a near-duplicate of a labeled prompt counts the most.
        weights = np.maximum(sims[nearest], 0.0) + 1e-6
        return min(1.0, float(weights @ self.labels[nearest] / weights.sum()))

    def predict_many(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        return np.array([self.predict(row) for row in np.asarray(vectors)], dtype=np.float64)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "version": np.array(_FORMAT_VERSION),
            "kind": np.array(self.kind),
            "dim": np.array(self.dim),
            "bias": np.array(self.bias),
            "k": np.array(self.k),
        }
        if self.weights is not None:
            arrays["weights"] = self.weights
        if self.examples is not None and self.labels is not None:
            arrays["examples"] = self.examples
            arrays["labels"] = self.labels
        with open(path, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Head:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["version"])
            if version != _FORMAT_VERSION:
                raise ValueError(
                    f"Expected a head file of format version {_FORMAT_VERSION}, got {version} ({path})"
                )
            kind = str(data["kind"])
            if kind not in ("knn", "logistic"):
                raise ValueError(f"Expected head kind `knn` or `logistic`, got `{kind}` ({path})")
            return cls(
                kind,  # type: ignore[arg-type]
                dim=int(data["dim"]),
                bias=float(data["bias"]),
                k=int(data["k"]),
                weights=data["weights"].astype(np.float32) if "weights" in data else None,
                examples=data["examples"].astype(np.float32) if "examples" in data else None,
                labels=data["labels"].astype(np.float32) if "labels" in data else None,
            )


def fit_head(
    vectors: npt.NDArray[np.floating],
    needs_strong: Sequence[bool] | npt.NDArray[np.bool_],
    *,
    kind: HeadKind = "logistic",
    k: int = 15,
    l2: float = 1e-2,
    epochs: int = 400,
    learning_rate: float = 2.0,
) -> Head:
    """Fit a head on embeddings of labeled prompts (``needs_strong`` = the light model failed)."""
    matrix = _normalize(vectors)
    labels = np.asarray(needs_strong, dtype=np.float32).reshape(-1)
    if matrix.ndim != 2 or matrix.shape[0] != labels.shape[0] or matrix.shape[0] == 0:
        raise ValueError(
            f"Expected one label per embedding, got {labels.shape[0]} labels for {matrix.shape[0]} rows"
        )
    dim = int(matrix.shape[1])
    if kind == "knn":
        return Head("knn", dim=dim, examples=matrix, labels=labels, k=k)
    # Full-batch gradient descent on the L2-regularized log loss: a few hundred epochs over a few
    # thousand rows takes milliseconds and needs nothing beyond numpy.
    x = matrix.astype(np.float64)
    y = labels.astype(np.float64)
    weights = np.zeros(dim)
    prior = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    bias = float(np.log(prior / (1 - prior)))
    n = x.shape[0]
    for _ in range(epochs):
        z = np.clip(x @ weights + bias, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-z))
        error = p - y
        weights -= learning_rate * (x.T @ error / n + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return Head("logistic", dim=dim, weights=weights.astype(np.float32), bias=bias)
