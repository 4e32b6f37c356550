"""``POST /v1/embeddings`` through every host, driven by the official SDK, with the ``hash`` embedder.

The config's ``lexical`` embedder is ``{kind: hash, dim: 64}``: deterministic, so vectors are
compared exactly with the embedder's own function. Each scenario stays well under the admission
rule that shares this path (test_limits.py counts requests without its header per address).
"""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import async_openai_client, openai_client

from tidegate.embeddings.hashing import hash_vectors

DIM = 64
TEXTS = ["How do I reset my password?", "Where is my refund?", "How do I reset my password?"]


def _expected(texts: list[str]) -> np.ndarray:
    rows = hash_vectors(texts, DIM)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_sync_batch_floats_and_base64(host: RunningHost) -> None:
    with openai_client(host) as client:
        floats = client.embeddings.create(model="lexical", input=TEXTS, encoding_format="float")
        packed = client.embeddings.create(model="lexical", input=TEXTS[0])  # the SDK asks for base64
    assert floats.object == "list" and floats.model == "lexical"
    assert [item.index for item in floats.data] == [0, 1, 2]
    vectors = np.array([item.embedding for item in floats.data], dtype=np.float32)
    assert vectors.shape == (3, DIM)
    np.testing.assert_allclose(vectors, _expected(TEXTS), atol=1e-6)
    assert vectors[0] @ vectors[2] == pytest.approx(1.0) and vectors[0] @ vectors[1] < 0.9
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    # The SDK requested base64 and decoded it back into floats: the same vector, bit for bit.
    assert packed.data[0].embedding == floats.data[0].embedding


async def test_async_client(host: RunningHost) -> None:
    async with async_openai_client(host) as client:
        raw = await client.embeddings.with_raw_response.create(
            model="lexical", input=["refund"], encoding_format="base64"
        )
    assert raw.headers["content-type"].startswith("application/json")
    wire = raw.http_response.json()["data"][0]["embedding"]  # what was actually sent: base64 text
    vector = np.frombuffer(base64.b64decode(wire), dtype="<f4")
    np.testing.assert_allclose(vector, _expected(["refund"])[0], atol=1e-6)


def test_unknown_embedder_is_404_for_the_sdk(host: RunningHost) -> None:
    with openai_client(host) as client, pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no-such-embedder", input="hi")
    assert info.value.code == "model_not_found" and info.value.param == "model"
