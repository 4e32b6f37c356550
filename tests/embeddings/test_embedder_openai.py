"""The `openai` embedder against real HTTP servers on 127.0.0.1 (the simulator and a scripted one)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from tidegate._concurrency import WorkerPool
from tidegate.embeddings import EmbedderConfig, build_embedder
from tidegate.embeddings.openai import OpenAIEmbedder
from tidegate.errors import UpstreamError
from tidegate.providers.simulator import Simulator

Handler = Callable[[dict[str, Any]], web.Response]


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(2, name="test-openai")
    yield workers
    workers.shutdown()


class Scripted:
    """A tiny /v1/embeddings server whose answer each test chooses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply: Handler = self.vectors

    @staticmethod
    def vectors(body: dict[str, Any], dim: int = 8, b64: bool = True) -> web.Response:
        data = []
        for i, text in enumerate(body["input"]):
            vec = np.full(dim, float(len(text)), dtype="<f4")
            vec[i % dim] += 1.0
            emb: Any = base64.b64encode(vec.tobytes()).decode() if b64 else vec.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        data.reverse()  # servers may answer out of order: `index` decides
        return web.json_response({"object": "list", "data": data})

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        return self.reply(body)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    server = Scripted()
    app = web.Application()
    app.router.add_post("/v1/embeddings", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_against_the_simulator(sim: Simulator, pool: WorkerPool) -> None:
    cfg = EmbedderConfig(kind="openai", url=sim.url, model="bge-small", dim=384)
    async with build_embedder("remote", cfg, pool) as emb:
        assert isinstance(emb, OpenAIEmbedder) and emb.model_id == "openai:bge-small"
        v = await emb.embed(["where is my order", "where is my order please", "bananas"])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


async def test_concurrent_calls_become_one_request_and_dim_is_probed(
    scripted: tuple[Scripted, str], pool: WorkerPool
) -> None:
    server, url = scripted
    cfg = EmbedderConfig(kind="openai", url=url, model="m", api_key="sk-test", batch_wait=0.05)
    async with build_embedder("remote", cfg, pool) as emb:
        assert emb.dim == 8  # learned from one probe request at start
        probes = len(server.requests)
        out = await asyncio.gather(*(emb.embed([f"text number {i}"]) for i in range(5)))
    assert len(server.requests) == probes + 1
    assert server.requests[-1]["model"] == "m" and len(server.requests[-1]["input"]) == 5
    assert server.requests[-1]["encoding_format"] == "base64"
    assert server.headers[-1]["Authorization"] == "Bearer sk-test"
    # Reversed `data` was put back in order: row i carries the bump at position i.
    assert [int(np.argmax(o[0])) for o in out] == [0, 1, 2, 3, 4]


async def test_float_lists_are_accepted(scripted: tuple[Scripted, str], pool: WorkerPool) -> None:
    server, url = scripted
    server.reply = lambda body: Scripted.vectors(body, b64=False)
    async with build_embedder("r", EmbedderConfig(kind="openai", url=url, dim=8), pool) as emb:
        assert (await emb.embed(["a", "bb"])).shape == (2, 8)


async def test_upstream_status_and_retry_after_are_kept(
    scripted: tuple[Scripted, str], pool: WorkerPool
) -> None:
    server, url = scripted
    server.reply = lambda body: web.json_response(
        {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "3"}
    )
    async with build_embedder("r", EmbedderConfig(kind="openai", url=url, dim=8), pool) as emb:
        with pytest.raises(UpstreamError) as caught:
            await emb.embed(["x"])
    assert caught.value.upstream_status == 429 and caught.value.retry_after == 3.0
    assert "slow down" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda body: web.json_response({"data": []}), "Expected 1 items"),
        (lambda body: Scripted.vectors(body, dim=4), "dimension 8"),
        (lambda body: web.json_response({"data": [{"index": 0, "embedding": 5}]}), "list or base64"),
    ],
)
async def test_malformed_answers_are_upstream_errors(
    scripted: tuple[Scripted, str], pool: WorkerPool, reply: Handler, message: str
) -> None:
    server, url = scripted
    server.reply = reply
    async with build_embedder("r", EmbedderConfig(kind="openai", url=url, dim=8), pool) as emb:
        with pytest.raises(UpstreamError, match=message):
            await emb.embed(["x"])
