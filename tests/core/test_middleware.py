"""The middleware leaves the host app alone and joins its lifespan in every arrangement."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support.servers import serve
from tidegate import Gateway, TidegateMiddleware, UsageError
from tidegate.config import parse_config

CONFIG = {"prefix": "/ai", "models": {"m": {"url": "http://127.0.0.1:9/v1"}}}


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(
        body,
        headers={"x-sha": hashlib.sha256(body).hexdigest(), "x-custom": "kept"},
        media_type="application/octet-stream",
    )


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(50):
            yield f"chunk-{index};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


def host_app(events: list[str] | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if events is not None:
            events.append("host-start")
        yield
        if events is not None:
            events.append("host-stop")

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/ai-not-prefix", lambda r: JSONResponse({"host": True})),
        ],
        lifespan=lifespan if events is not None else None,
    )


async def test_host_routes_are_untouched_large_bodies_and_streams() -> None:
    gateway = Gateway(parse_config(CONFIG))
    app = TidegateMiddleware(host_app(), gateway=gateway)
    payload = os.urandom(3 * 1024 * 1024 + 7)  # larger than max_body_size would allow on surfaces
    async with serve(app) as url, aiohttp.ClientSession() as client:
        async with client.post(url + "/echo", data=io.BytesIO(payload)) as resp:
            body = await resp.read()
            assert resp.status == 200
            assert body == payload
            assert resp.headers["x-sha"] == hashlib.sha256(payload).hexdigest()
            assert resp.headers["x-custom"] == "kept"
            assert "x-tidegate-overhead-ms" not in resp.headers
        async with client.get(url + "/stream") as resp:
            text = await resp.text()
            assert text == "".join(f"chunk-{i};" for i in range(50))
        async with client.get(url + "/ai-not-prefix") as resp:
            assert await resp.json() == {"host": True}  # shares the prefix's letters, not its path


async def test_lifespan_order_with_host_lifespan() -> None:
    events: list[str] = []
    gateway = Gateway(parse_config(CONFIG))
    inner = host_app(events)

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            events.append(f"gateway-{gateway.state}")
        await inner(scope, receive, send)

    app = TidegateMiddleware(recording, gateway=gateway)
    async with serve(app, lifespan="on") as url, aiohttp.ClientSession() as client:
        assert gateway.state == "running"
        async with client.get(url + "/ai/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["state"] == "running"
    assert gateway.state == "stopped"
    assert events == ["gateway-unopened", "host-start", "host-stop"]


async def test_lifespan_with_a_host_that_does_not_speak_lifespan() -> None:
    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "this host app only knows http"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gateway = Gateway(parse_config(CONFIG))
    async with serve(TidegateMiddleware(http_only, gateway=gateway), lifespan="on") as url:
        assert gateway.state == "running"
        async with aiohttp.ClientSession() as client, client.get(url + "/x") as resp:
            assert resp.status == 204
    assert gateway.state == "stopped"


async def test_without_lifespan_the_gateway_starts_lazily_on_first_request() -> None:
    gateway = Gateway(parse_config(CONFIG))
    app = TidegateMiddleware(host_app(), gateway=gateway)
    async with serve(app, lifespan="off") as url, aiohttp.ClientSession() as client:
        assert gateway.state == "unopened"
        async with client.post(url + "/ai/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}) as resp:
            assert resp.status == 404
        assert gateway.state == "running"
    await gateway.stop()


async def test_startup_failure_is_reported_as_lifespan_startup_failed() -> None:
    gateway = Gateway(parse_config(CONFIG))
    await gateway.start()
    await gateway.stop()  # a stopped gateway cannot start again
    messages: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    fresh = Gateway(parse_config(CONFIG))
    fresh.upstreams["m"].state = "closed"  # makes start() fail inside the gateway
    app = TidegateMiddleware(host_app([]), gateway=fresh)
    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert messages[0]["type"] == "lifespan.startup.failed"
    assert "tidegate" in messages[0]["message"]


def test_middleware_needs_exactly_one_source() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        TidegateMiddleware(host_app())
    with pytest.raises(UsageError, match="exactly one"):
        TidegateMiddleware(host_app(), config=parse_config(CONFIG), gateway=Gateway(parse_config(CONFIG)))


async def test_websocket_and_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = TidegateMiddleware(app, config=parse_config(CONFIG))
    await middleware({"type": "websocket", "path": "/ai/ws"}, None, None)
    assert seen == ["websocket"]
