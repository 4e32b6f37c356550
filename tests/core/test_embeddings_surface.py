"""`/v1/embeddings` on the OpenAI surface and knowledge retrieval through the Gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest

from support.servers import serve
from tidegate import Gateway, NotFoundError, TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def config(sim: Simulator, tmp_path: Path) -> dict[str, Any]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds reach your card within 5 business days.\n")
    (docs / "shipping.md").write_text("# Shipping\n\nParcels to Canada take 7 to 10 days.\n")
    return {
        "models": {"bge": {"url": sim.url, "kind": "embeddings"}},
        "embeddings": {"lexical": {"kind": "hash", "dim": 256}},
        "knowledge": {"faq": {"source": str(docs), "index": str(tmp_path / "index"), "embedder": "lexical"}},
    }


async def test_openai_sdk_gets_embeddings_in_both_encodings(sim: Simulator, tmp_path: Path) -> None:
    gateway = Gateway(parse_config(config(sim, tmp_path)))
    async with serve(TidegateMiddleware(bare, gateway=gateway), lifespan="on") as base:
        client = openai.AsyncOpenAI(base_url=base + "/ai/v1", api_key="unused", max_retries=0)
        packed = await client.embeddings.create(model="lexical", input=["refund please", "where is my parcel"])
        plain = await client.embeddings.create(model="lexical", input="refund please", encoding_format="float")
        assert len(packed.data) == 2 and len(packed.data[0].embedding) == 256
        assert np.allclose(packed.data[0].embedding, plain.data[0].embedding, atol=1e-6)
        assert np.linalg.norm(plain.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
        passthrough = await client.embeddings.create(model="bge", input="hello")
        assert len(passthrough.data[0].embedding) == 384  # the simulator's own dimension
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="nope", input="x")
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/ai/v1/embeddings", json={"model": "lexical", "input": []}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["param"] == "input"
        await client.close()


async def test_gateway_search_after_ingest(sim: Simulator, tmp_path: Path) -> None:
    async with Gateway(parse_config(config(sim, tmp_path))) as gateway:
        report = await gateway.knowledge["faq"].ingest()
        assert report is not None
        hits = await gateway.search("faq", "how long do refunds take to reach my card", top_k=1, score_threshold=0.0)
        assert hits and hits[0].title.lower().startswith("refunds")
        with pytest.raises(NotFoundError):
            await gateway.search("missing", "x")
