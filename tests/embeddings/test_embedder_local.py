"""Shipped offline models. They need extras; without them these tests skip with the extra named."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from tidegate._concurrency import WorkerPool
from tidegate.embeddings import EmbedderConfig, build_embedder
from tidegate.embeddings.local import MODELS, LocalEmbedder, missing_packages, resolve_model
from tidegate.errors import ConfigError


def _needs(model: str) -> pytest.MarkDecorator:
    spec = MODELS[model]
    missing = missing_packages(spec)
    return pytest.mark.skipif(
        bool(missing), reason=f"needs the `{spec.extra}` extra (missing {', '.join(missing)})"
    )


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(2, name="test-local")
    yield workers
    workers.shutdown()


def test_model_names_and_aliases_resolve() -> None:
    assert resolve_model(None).name == "all-MiniLM-L6-v2"
    assert resolve_model("minilm").name == "all-MiniLM-L6-v2"
    assert resolve_model("e5").name == "multilingual-e5-small"
    with pytest.raises(ConfigError, match="Expected a local model"):
        resolve_model("bert-huge")


@_needs("all-MiniLM-L6-v2")
async def test_minilm_embeds_meaning(pool: WorkerPool) -> None:
    emb = build_embedder("default", EmbedderConfig(kind="local"), pool)
    assert isinstance(emb, LocalEmbedder)
    async with emb:
        assert emb.dim == 384 and emb.model_id == "local:all-MiniLM-L6-v2"
        v = await emb.embed(["How do I get my money back?", "What is your refund policy?",
                             "The weather is lovely today"])  # fmt: skip
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
        assert v[0] @ v[1] > 0.4
        assert v[0] @ v[1] > v[0] @ v[2] + 0.3


@_needs("all-MiniLM-L6-v2")
async def test_minilm_padding_is_off_and_batching_does_not_change_vectors(pool: WorkerPool) -> None:
    async with build_embedder("default", EmbedderConfig(kind="local", cache_size=0), pool) as emb:
        assert isinstance(emb, LocalEmbedder)
        runner = emb._runner
        # The shipped tokenizer.json pads to 128 tokens; a short query must stay short.
        assert len(runner.tokenizer.encode("hi there").ids) < 8  # type: ignore[union-attr]
        short = "Where is my parcel?"
        long = "A much longer passage about shipping delays, customs checks and carriers. " * 6
        alone = await emb.embed([short])
        together = await emb.embed([long, short], kind="document")
        np.testing.assert_allclose(alone[0], together[1], atol=1e-4)


@_needs("use-multilingual-v3")
async def test_multilingual_use_relates_chinese_paraphrases(pool: WorkerPool) -> None:
    async with build_embedder("m", EmbedderConfig(kind="local", model="use-multilingual-v3"), pool) as emb:
        assert emb.dim == 512
        v = await emb.embed(["退款需要多长时间？", "我的钱多久能退回来？", "今天天气很好"])
        assert v[0] @ v[1] > v[0] @ v[2] + 0.1


@_needs("multilingual-e5-small")
async def test_e5_uses_query_and_passage_prefixes(pool: WorkerPool) -> None:
    async with build_embedder("e5", EmbedderConfig(kind="local", model="e5"), pool) as emb:
        query = await emb.embed(["how long does a refund take"], kind="query")
        passage = await emb.embed(["how long does a refund take"], kind="document")
        assert not np.allclose(query, passage)  # different prefixes, different vectors
        assert emb.default_threshold > 0.5  # e5 cosines sit high: its own threshold
