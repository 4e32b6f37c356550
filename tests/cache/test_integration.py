"""The cache in front of a real Gateway, OpenAI surface and simulator, over real sockets.

The real Gateway with a `cache:` section and a hash embedder as `default`, so the whole path
(middleware → surface → cache → router → upstream → simulator) is exercised end to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from support.servers import serve
from tidegate import Gateway, TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

QUESTION = [{"role": "user", "content": "How do I get a refund?"}]


async def host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def config(sim: Simulator, **extra: Any) -> Any:
    return parse_config({
        "models": {"light": {"url": sim.url, "timeout": "10s"}},
        "cache": {}, "embeddings": {"default": {"kind": "hash"}}, **extra,
    })  # fmt: skip


async def sim_stats(sim: Simulator) -> dict[str, Any]:
    async with aiohttp.ClientSession() as client, client.get(sim.url.removesuffix("/v1") + "/sim/stats") as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def read_sse(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events = []
    async for line in resp.content:
        text = line.decode().strip()
        if text.startswith("data: ") and text != "data: [DONE]":
            events.append(json.loads(text[6:]))
    return events


def sse_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


@pytest.fixture
async def served(sim: Simulator) -> AsyncIterator[tuple[str, Gateway]]:
    gateway = Gateway(config(sim, auth={"api_keys": {"acme": "sk-acme", "globex": "sk-globex"}}))
    async with serve(TidegateMiddleware(host, gateway=gateway), lifespan="on") as base:
        yield base + "/ai/v1/chat/completions", gateway


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_concurrent_identical_requests_reach_the_simulator_once(served: Any, sim: Simulator) -> None:
    url, _ = served
    sim.update(ttft=0.3)
    async with aiohttp.ClientSession() as client:

        async def one() -> tuple[str, str]:
            async with client.post(url, json={"model": "light", "messages": QUESTION}, headers=bearer("sk-acme")) as resp:
                assert resp.status == 200
                body = await resp.json()
                return body["choices"][0]["message"]["content"], resp.headers["cache-status"]

        results = await asyncio.gather(*(one() for _ in range(8)))
    assert (await sim_stats(sim))["by_endpoint"]["chat"] == 1
    assert len({text for text, _ in results}) == 1
    assert sorted(status for _, status in results) == ["tidegate; fwd=miss; collapsed"] * 7 + ["tidegate; fwd=miss; stored"]


async def test_tenants_are_isolated_end_to_end(served: Any, sim: Simulator) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as client:
        statuses = []
        for key in ("sk-acme", "sk-globex", "sk-acme", "sk-globex"):
            async with client.post(url, json={"model": "light", "messages": QUESTION}, headers=bearer(key)) as resp:
                assert resp.status == 200
                statuses.append(resp.headers["cache-status"])
    assert (await sim_stats(sim))["by_endpoint"]["chat"] == 2
    assert [s.split(";")[1].strip() for s in statuses] == ["fwd=miss", "fwd=miss", "hit", "hit"]


async def test_streamed_answer_is_replayed_as_sse_with_the_same_text(served: Any, sim: Simulator) -> None:
    url, _ = served
    request = {"model": "light", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as client:
        async with client.post(url, json=request, headers=bearer("sk-acme")) as resp:
            assert resp.headers["cache-status"] == "tidegate; fwd=miss"
            original = await read_sse(resp)
        async with client.post(url, json=request, headers=bearer("sk-acme")) as resp:
            assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-status"].endswith("detail=exact")
            replay = await read_sse(resp)
        async with client.post(url, json={"model": "light", "messages": QUESTION}, headers=bearer("sk-acme")) as resp:
            blocking = (await resp.json())["choices"][0]["message"]["content"]
    assert sse_text(original) and sse_text(replay) == sse_text(original) == blocking
    assert replay[-1]["usage"] == original[-1]["usage"]
    assert (await sim_stats(sim))["by_endpoint"]["chat"] == 1


async def test_client_disconnect_still_aborts_the_upstream_stream(served: Any, sim: Simulator) -> None:
    url, _ = served
    sim.update(tokens_per_second=20.0)
    request = {"model": "light", "messages": QUESTION, "stream": True, "max_tokens": 200}
    async with aiohttp.ClientSession() as client:
        resp = await client.post(url, json=request, headers=bearer("sk-acme"))
        assert resp.status == 200
        await resp.content.readline()
        resp.close()
    for _ in range(100):
        if (await sim_stats(sim))["aborted"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert (await sim_stats(sim))["aborted"] == 1


async def test_upstream_errors_are_not_cached_and_metrics_are_exposed(served: Any, sim: Simulator) -> None:
    url, gateway = served
    sim.update(faults={"500": 1.0})
    async with aiohttp.ClientSession() as client:
        async with client.post(url, json={"model": "light", "messages": QUESTION}, headers=bearer("sk-acme")) as resp:
            assert resp.status >= 500 and resp.headers["cache-status"] == "tidegate; fwd=miss"
        sim.update(faults={})
        failed_calls = (await sim_stats(sim))["by_endpoint"]["chat"]  # retries may have run
        for _ in range(2):
            async with client.post(url, json={"model": "light", "messages": QUESTION}, headers=bearer("sk-acme")) as resp:
                assert resp.status == 200
        async with client.get(url.replace("/v1/chat/completions", "/metrics"), headers=bearer("sk-acme")) as resp:
            metrics = await resp.text()
    assert (await sim_stats(sim))["by_endpoint"]["chat"] == failed_calls + 1
    assert 'tidegate_cache_hits_total{kind="exact"} 1.0' in metrics
    assert 'tidegate_cache_entries{tier="exact"} 1.0' in metrics
    assert gateway.cache.state == "open"
