"""HTTP tools over real sockets, behind the engine's SSRF guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tidegate.agent.http_tool import HttpTool
from tidegate.agent.tools import ToolContext, execute
from tidegate.config.agents import HttpToolConfig
from tidegate.config.loader import convert_section
from tidegate.engine.http import HttpNodeClient

CTX = ToolContext(run_id="r", agent="a")


async def _orders(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"], "query": dict(request.query),
                              "auth": request.headers.get("Authorization"), "key": request.headers.get("X-Key"),
                              "method": request.method})  # fmt: skip


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"body": await request.json(), "content_type": request.content_type,
                              "auth": request.headers.get("Authorization")})  # fmt: skip


def _fixed(response: web.StreamResponse | type[web.HTTPException], *args: Any) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        if isinstance(response, type):
            raise response(*args)
        return response

    return handler


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/orders/{id}", _orders)
    app.router.add_post("/echo", _echo)
    app.router.add_get("/big", _fixed(web.Response(text="x" * 5000)))
    app.router.add_get("/text", _fixed(web.Response(text="plain words")))
    app.router.add_get("/fail", _fixed(web.Response(status=503, text="backend down")))
    app.router.add_get("/redirect", _fixed(web.HTTPFound, "/orders/7"))
    app.router.add_post("/see-other", _fixed(web.HTTPSeeOther, "/orders/8"))
    app.router.add_get("/loop", _fixed(web.HTTPFound, "/loop"))
    return app


@pytest.fixture
async def base() -> AsyncIterator[str]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def clients() -> AsyncIterator[HttpNodeClient]:
    async with HttpNodeClient() as client:
        yield client


def http_tool(clients: HttpNodeClient, **config: Any) -> HttpTool:
    return HttpTool("api", convert_section(config, HttpToolConfig, "$.tools.api.http"), client=clients)


async def call(tool: HttpTool, arguments: str) -> Any:
    return await execute(tool, call_id="c", name="api", arguments=arguments, ctx=CTX)


async def test_get_fills_the_url_and_sends_the_rest_as_query(base: str, clients: HttpNodeClient) -> None:
    tool = http_tool(clients, url=base + "/orders/{order_id}", method="GET", allow_private=True,
                     auth={"type": "bearer", "token": "s3cret"})  # fmt: skip
    assert tool.parameters["required"] == ["order_id"]
    outcome = await call(tool, '{"order_id": "a/b 1", "verbose": true}')
    assert outcome.status == "ok", outcome.error
    assert outcome.output == '{"id":"a/b 1","query":{"verbose":"true"},"auth":"Bearer s3cret","key":null,"method":"GET"}'


async def test_post_body_template_keeps_json_types(base: str, clients: HttpNodeClient) -> None:
    tool = http_tool(clients, url=base + "/echo", allow_private=True, auth={"type": "basic", "username": "u", "password": "p"},
                     body={"order": "{order_id}", "note": "order #{order_id} for {name}", "fixed": [1, "{name}"]})  # fmt: skip
    outcome = await call(tool, '{"order_id": 42, "name": "Ann"}')
    assert outcome.status == "ok", outcome.error
    assert outcome.output == (
        '{"body":{"order":42,"note":"order #42 for Ann","fixed":[1,"Ann"]},'
        '"content_type":"application/json","auth":"Basic dTpw"}'
    )
    missing = await call(tool, '{"order_id": 1}')
    assert missing.error == "tool `api` failed: missing argument `name`"


async def test_post_without_template_sends_the_arguments(base: str, clients: HttpNodeClient) -> None:
    tool = http_tool(clients, url=base + "/echo", allow_private=True, auth={"type": "api-key", "token": "k", "header": "X-Key"})
    outcome = await call(tool, '{"a": [1, 2]}')
    assert outcome.output.startswith('{"body":{"a":[1,2]}')


async def test_errors_sizes_and_text(base: str, clients: HttpNodeClient) -> None:
    fail = await call(http_tool(clients, url=base + "/fail", method="GET", allow_private=True), "{}")
    assert fail.error == f"tool `api` failed: HTTP 503 from GET {base}/fail: backend down"
    big = await call(http_tool(clients, url=base + "/big", method="GET", allow_private=True, max_response_size=1000), "{}")
    assert big.error == "tool `api` failed: response body is larger than 1000 bytes"
    text = await call(http_tool(clients, url=base + "/text", method="GET", allow_private=True), "{}")
    assert text.output == "plain words"
    down = await call(http_tool(clients, url="http://127.0.0.1:9/x", method="GET", allow_private=True), "{}")
    assert (down.error or "").startswith("tool `api` failed: cannot connect to 127.0.0.1:9:")


async def test_redirects_are_followed_by_hand(base: str, clients: HttpNodeClient) -> None:
    found = await call(http_tool(clients, url=base + "/redirect", method="GET", allow_private=True), "{}")
    assert '"id":"7"' in found.output
    see_other = await call(http_tool(clients, url=base + "/see-other", allow_private=True), '{"x": 1}')
    assert '"id":"8"' in see_other.output and '"method":"GET"' in see_other.output
    looping = await call(http_tool(clients, url=base + "/loop", method="GET", allow_private=True), "{}")
    assert looping.error == "tool `api` failed: too many redirects (more than 3)"


async def test_private_targets_are_refused_by_default(base: str, clients: HttpNodeClient) -> None:
    literal = await call(http_tool(clients, url=base + "/text", method="GET"), "{}")
    assert literal.error == (
        "tool `api` failed: refused to connect: 127.0.0.1 is not a public address"
        " (set `allow_private: true` on the tool to allow it)"
    )
    named = await call(http_tool(clients, url=base.replace("127.0.0.1", "localhost") + "/text", method="GET"), "{}")
    assert named.error == (
        "tool `api` failed: refused to connect: localhost resolves to the non-public address 127.0.0.1"
        " (set `allow_private: true` on the tool to allow it)"
    )
    metadata = await call(http_tool(clients, url="http://169.254.169.254/latest/meta-data", method="GET"), "{}")
    assert (metadata.error or "").endswith("169.254.169.254 is not a public address (set `allow_private: true` on the tool to allow it)")
    allowed = await call(http_tool(clients, url=base + "/text", method="GET", allow_private=True), "{}")
    assert allowed.output == "plain words"
