"""API keys on the surfaces, and draining in-flight requests on stop()."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from support.servers import serve
from tidegate import Gateway, ShuttingDown, TidegateMiddleware, UsageError
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def sim_config(sim: Simulator, patch: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(sim.url.removesuffix("/v1") + "/sim/config", json=patch) as resp:
            assert resp.status == 200


def keyed(sim: Simulator, **auth: Any) -> dict[str, Any]:
    return {
        "models": {"light": {"url": sim.url}},
        "auth": {"api_keys": {"shop": "sk-shop-123", "blog": "sk-blog-456"}, **auth},
    }


async def test_keys_are_required_and_checked(sim: Simulator) -> None:
    gateway = Gateway(parse_config(keyed(sim, public_metrics=False)))
    request = {"model": "light", "messages": MESSAGES}
    async with serve(TidegateMiddleware(bare, gateway=gateway), lifespan="on") as base, aiohttp.ClientSession() as client:
        url = base + "/ai/v1/chat/completions"
        async with client.post(url, json=request) as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["error"]["code"] == "invalid_api_key"
            assert "Bearer" in body["error"]["message"]
        async with client.post(url, json=request, headers={"Authorization": "Bearer sk-wrong"}) as resp:
            assert resp.status == 401
            assert "sk-wrong" not in await resp.text()
        async with client.post(url, json=request, headers={"Authorization": "Bearer sk-blog-456"}) as resp:
            assert resp.status == 200
        async with client.get(base + "/ai/metrics") as resp:
            assert resp.status == 401
        async with client.get(base + "/ai/metrics", headers={"Authorization": "Bearer sk-shop-123"}) as resp:
            text = await resp.text()
        async with client.get(base + "/ai/healthz") as resp:
            assert resp.status == 200  # public by default
    assert "sk-shop" not in text and "sk-blog" not in text and "sk-wrong" not in text


async def test_stop_drains_in_flight_requests(sim: Simulator) -> None:
    await sim_config(sim, {"ttft": 0.5})
    gateway = Gateway(parse_config({"models": {"light": {"url": sim.url}}, "shutdown_timeout": "5s"}))
    await gateway.start()
    async with serve(TidegateMiddleware(bare, gateway=gateway), lifespan="off") as base, aiohttp.ClientSession() as client:
        url = base + "/ai/v1/chat/completions"
        blocking = asyncio.create_task(client.post(url, json={"model": "light", "messages": MESSAGES}))
        streaming = asyncio.create_task(client.post(url, json={"model": "light", "messages": MESSAGES, "stream": True}))
        while gateway.in_flight < 2:
            await asyncio.sleep(0.01)
        stopping = asyncio.create_task(gateway.stop())
        await asyncio.sleep(0.05)
        assert gateway.state == "draining"
        async with client.post(url, json={"model": "light", "messages": MESSAGES}) as late:
            assert late.status == 503
            assert (await late.json())["error"]["code"] == "shutting_down"
            assert late.headers["retry-after"] == "1"
        first, second = await blocking, await streaming
        assert first.status == 200 and (await first.json())["choices"]
        assert second.status == 200
        assert (await second.text()).endswith("data: [DONE]\n\n")
        await stopping
    assert gateway.state == "stopped"


async def test_stop_cancels_stragglers_with_a_clean_error(sim: Simulator, no_leaked_tasks: Any) -> None:
    await sim_config(sim, {"faults": {"hang": 1.0}})
    gateway = Gateway(parse_config({"models": {"light": {"url": sim.url}}}))
    await gateway.start()
    async with serve(TidegateMiddleware(bare, gateway=gateway), lifespan="off") as base, aiohttp.ClientSession() as client:
        url = base + "/ai/v1/chat/completions"
        blocking = asyncio.create_task(client.post(url, json={"model": "light", "messages": MESSAGES}))
        while gateway.in_flight < 1:
            await asyncio.sleep(0.01)
        await gateway.stop(timeout=0.2)
        resp = await blocking
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "shutting_down"
        resp.release()
    await no_leaked_tasks()


async def test_stop_cancels_a_started_stream_with_an_error_event(sim: Simulator) -> None:
    await sim_config(sim, {"tokens_per_second": 5.0})
    gateway = Gateway(parse_config({"models": {"light": {"url": sim.url}}}))
    await gateway.start()
    async with serve(TidegateMiddleware(bare, gateway=gateway), lifespan="off") as base, aiohttp.ClientSession() as client:
        request = {"model": "light", "messages": MESSAGES, "stream": True, "max_tokens": 100}
        async with client.post(base + "/ai/v1/chat/completions", json=request) as resp:
            await resp.content.readline()
            await gateway.stop(timeout=0.1)
            rest = (await resp.read()).decode()
    events = [line[6:] for line in rest.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "shutting_down"


async def test_lifecycle_misuse_is_a_usage_error(sim: Simulator) -> None:
    gateway = Gateway(parse_config({"models": {"light": {"url": sim.url}}}))
    with pytest.raises(UsageError, match="start"):
        await gateway.chat(MESSAGES, model="light")
    async with gateway:
        with pytest.raises(UsageError, match="starts once"):
            await gateway.start()
        answer = await gateway.chat(MESSAGES, model="light", max_tokens=5)
        assert answer["usage"]["completion_tokens"] == 5
        chunks = [c async for c in gateway.stream_chat(MESSAGES, model="light", max_tokens=5)]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert gateway.state == "stopped"
    with pytest.raises(UsageError):
        await gateway.chat(MESSAGES, model="light")
    async with gateway.flight() if False else _noop():
        pass
    with pytest.raises(ShuttingDown):
        async with gateway.flight():
            pass


class _noop:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
