from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from support.dsl import dsl, edge, node, simple_dsl


@pytest.fixture
def simple() -> dict[str, Any]:
    return simple_dsl()


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(node=node, edge=edge, dsl=dsl, compile=compile_dsl, http=http_node,
                           start=start_node, end=end_node, chain=chain, collect=collect, tpl=tpl)


def ours() -> list[asyncio.Task[object]]:
    """Every task still alive besides the test's own (the engine must leave none behind)."""
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)
    assert ours() == []


def compile_dsl(data: dict[str, Any], **kwargs: Any) -> Any:
    from tidegate.engine import compile_workflow

    return compile_workflow(data, **kwargs)


class ServerState:
    """What the test server saw: for asserting concurrency, cancellation and retries."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnects = 0
        self.hits: dict[str, list[float]] = {}
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
async def server() -> AsyncIterator[SimpleNamespace]:
    """A real HTTP server on 127.0.0.1 for http-request nodes."""
    import time

    from aiohttp import web

    state = ServerState()

    async def echo(request: web.Request) -> web.Response:
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "content_type": request.content_type,
        }
        if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            record["form"] = {k: (v if isinstance(v, str) else v.file.read().decode()) for k, v in form.items()}
            record["body"] = ""
        else:
            record["body"] = (await request.read()).decode("utf-8", "replace")
        state.requests.append(record)
        return web.json_response(record)

    async def sleep(request: web.Request) -> web.Response:
        key = request.query.get("key", "sleep")
        state.hits.setdefault(key, []).append(time.monotonic())
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(float(request.query.get("ms", "100")) / 1000)
        finally:
            state.in_flight -= 1
        return web.json_response({"slept": request.query.get("ms"), "key": key})

    async def hang(request: web.Request) -> web.Response:
        state.hits.setdefault("hang", []).append(time.monotonic())
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state.disconnects += 1
            raise
        return web.Response(text="never")

    async def flaky(request: web.Request) -> web.Response:
        key = request.query.get("key", "flaky")
        hits = state.hits.setdefault(key, [])
        hits.append(time.monotonic())
        if len(hits) <= int(request.query.get("fail", "1")):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                state.disconnects += 1
                raise
        return web.json_response({"attempt": len(hits)})

    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)), content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/sleep", sleep)
    app.router.add_get("/hang", hang)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/binary", binary)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", state=state)
    finally:
        await runner.cleanup()


@pytest.fixture
async def http_client() -> AsyncIterator[Any]:
    from tidegate.engine import HttpNodeClient

    client = HttpNodeClient()
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sandbox() -> AsyncIterator[Any]:
    from tidegate.engine import CodeSandbox

    box = CodeSandbox(workers=2)
    await box.start()
    try:
        yield box
    finally:
        await box.close()


def http_node(node_id: str, url: str, **data: Any) -> dict[str, Any]:
    return node(node_id, "http-request", node_id, method=data.pop("method", "get"), url=url,
                authorization=data.pop("authorization", {"type": "no-auth"}), headers=data.pop("headers", ""),
                params=data.pop("params", ""), body=data.pop("body", {"type": "none", "data": []}), **data)


def start_node(*names: str, node_id: str = "start") -> dict[str, Any]:
    return node(node_id, "start", "Start", variables=[{"variable": n, "label": n, "type": "text-input"} for n in names])


def end_node(node_id: str = "end", **outputs: list[str]) -> dict[str, Any]:
    return node(node_id, "end", "End", outputs=[{"variable": k, "value_selector": v} for k, v in outputs.items()])


def tpl(node_id: str, template: str, **variables: list[str]) -> dict[str, Any]:
    """A template-transform node over the given variables."""
    return node(node_id, "template-transform", node_id, template=template,
                variables=[{"variable": k, "value_selector": v} for k, v in variables.items()])


def chain(*ids: str) -> list[dict[str, Any]]:
    return [edge(a, b) for a, b in itertools.pairwise(ids)]


async def collect(run_iter: Any) -> list[Any]:
    return [event async for event in run_iter]


@pytest.fixture
async def gateway(sim: Any) -> AsyncIterator[Any]:
    """The real Gateway in front of the real simulator: what LLM-using nodes call in production."""
    from tidegate import Gateway
    from tidegate.config import parse_config

    config = parse_config({"models": {"sim-small": {"url": sim.url}, "sim-large": {"url": sim.url}}})
    async with Gateway(config) as gw:
        yield gw
