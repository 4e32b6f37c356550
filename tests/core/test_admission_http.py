"""Admission through the surfaces and the middleware: statuses, envelopes and headers on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from support.servers import serve
from tidegate import Gateway, TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

BODY = {"model": "light", "messages": [{"role": "user", "content": "Is my order shipped?"}], "max_tokens": 8}


def host() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/orders", lambda r: PlainTextResponse("orders")),
            Route("/public", lambda r: PlainTextResponse("public")),
        ]
    )


def gateway(sim: Simulator, **extra: Any) -> Gateway:
    return Gateway(parse_config({"models": {"light": {"url": sim.url}}, **extra}))


async def test_request_limit_is_429_with_openai_and_ietf_headers(sim: Simulator) -> None:
    gw = gateway(
        sim,
        auth={"api_keys": {"shop": "sk-1", "blog": "sk-2"}},
        limits=[{"key": "api_key", "requests": "2/minute"}],
    )
    async with serve(TidegateMiddleware(host(), gateway=gw), lifespan="on") as base, aiohttp.ClientSession() as client:
        url = base + "/ai/v1/chat/completions"
        shop = {"Authorization": "Bearer sk-1"}
        for remaining in ("1", "0"):
            async with client.post(url, json=BODY, headers=shop) as resp:
                assert resp.status == 200
                assert resp.headers["RateLimit-Limit"] == "2"
                assert resp.headers["RateLimit-Remaining"] == remaining
                assert resp.headers["x-ratelimit-limit-requests"] == "2"
        async with client.post(url, json=BODY, headers=shop) as resp:
            assert resp.status == 429
            body = await resp.json()
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.headers["RateLimit-Remaining"] == "0"
            assert resp.headers["x-ratelimit-remaining-requests"] == "0"
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["error"]["type"] == "requests"
        async with client.post(url, json=BODY, headers={"Authorization": "Bearer sk-2"}) as resp:
            assert resp.status == 200  # another tenant has its own budget


async def test_concurrency_cap_sheds_with_503(sim: Simulator) -> None:
    sim.update(ttft=0.5)
    gw = gateway(sim, limits=[{"key": "global", "concurrency": 1, "queue": 0}])
    async with serve(TidegateMiddleware(host(), gateway=gw), lifespan="on") as base, aiohttp.ClientSession() as client:
        url = base + "/ai/v1/chat/completions"
        first = asyncio.create_task(client.post(url, json=BODY))
        while sim.stats["in_flight"] < 1:
            await asyncio.sleep(0.01)
        async with client.post(url, json=BODY) as resp:
            assert resp.status == 503
            assert "Retry-After" in resp.headers
            assert (await resp.json())["error"]["code"] == "overloaded"
        done = await first
        assert done.status == 200
        done.release()


async def test_protect_guards_host_paths_only(sim: Simulator) -> None:
    gw = gateway(sim, protect=[{"path": "/api/*", "key": "ip", "requests": "1/minute"}])
    async with serve(TidegateMiddleware(host(), gateway=gw), lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.get(base + "/api/orders") as resp:
            assert resp.status == 200 and await resp.text() == "orders"
        async with client.get(base + "/api/orders") as resp:
            assert resp.status == 429
            assert (await resp.json())["error"]["code"] == "rate_limit_exceeded"
            assert int(resp.headers["Retry-After"]) >= 1
        for _ in range(3):
            async with client.get(base + "/public") as resp:
                assert resp.status == 200


async def test_spoofed_forwarded_for_does_not_dodge_a_limit(sim: Simulator) -> None:
    gw = gateway(sim, protect=[{"path": "/api/*", "key": "ip", "requests": "1/minute"}])
    async with serve(TidegateMiddleware(host(), gateway=gw), lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.get(base + "/api/orders", headers={"X-Forwarded-For": "203.0.113.1"}) as resp:
            assert resp.status == 200
        async with client.get(base + "/api/orders", headers={"X-Forwarded-For": "203.0.113.2"}) as resp:
            assert resp.status == 429  # no trusted proxies configured: the header is ignored
