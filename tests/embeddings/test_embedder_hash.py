"""The dependency-free hashed n-gram embedder: stable, lexical, any language."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.embeddings.base import normalize
from tidegate.embeddings.hashing import hash_vectors


def _cos(a: str, b: str, dim: int = 512) -> float:
    v = normalize(hash_vectors([a, b], dim))
    return float(v[0] @ v[1])


def test_shared_words_score_higher_than_unrelated_text() -> None:
    assert _cos("How do I get a refund?", "how can i get a refund") > 0.6
    assert abs(_cos("How do I get a refund?", "Shipping delays in winter")) < 0.2


def test_case_and_punctuation_do_not_matter() -> None:
    assert _cos("Refund, please!", "refund please") > 0.999


def test_cjk_text_gets_features_too() -> None:
    assert _cos("退款需要多长时间", "退款要多久") > 0.2
    assert abs(_cos("退款需要多长时间", "天气很好")) < 0.2


def test_vectors_are_identical_across_processes() -> None:
    # Python's hash() is salted per process; ours must not be, or saved indexes would rot.
    code = (
        "from tidegate.embeddings.hashing import hash_vectors;"
        "print(hash_vectors(['stable across runs'], 64).tobytes().hex())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == hash_vectors(["stable across runs"], 64).tobytes().hex()


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200), st.sampled_from([16, 384, 512]))
def test_any_text_gives_a_finite_vector_of_the_right_size(text: str, dim: int) -> None:
    v = hash_vectors([text], dim)
    assert v.shape == (1, dim) and v.dtype == np.float32
    assert np.isfinite(v).all()


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), dim=st.sampled_from([64, 384, 512]))
def test_the_request_path_vector_is_bit_for_bit_the_batch_one(text: str, dim: int) -> None:
    # A question embedded on the loop (plain Python) and the same text embedded in a batch
    # (numpy, e.g. at ingest) must agree exactly: indexes built one way are searched the other.
    from tidegate.embeddings.hashing import query_vector

    expected = normalize(hash_vectors([text], dim))
    got = query_vector(text, dim)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)
