"""Services the Dify corpus runs against: the LLM simulator behind a real Gateway, a local HTTP
echo server, the code sandbox and the http-request client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.engine import CodeSandbox, HttpNodeClient
from tidegate.providers.simulator import Simulator, SimulatorConfig


@pytest.fixture
async def services() -> AsyncIterator[dict[str, Any]]:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({
            "method": request.method, "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode("utf-8", "replace"),
        })  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0)) as sim:
        config = parse_config({"models": {"sim-small": {"url": sim.url}}})
        async with Gateway(config) as gateway, CodeSandbox(workers=2) as sandbox, HttpNodeClient() as http:
            yield {"gateway": gateway, "sandbox": sandbox, "http": http, "base_url": base}
    await runner.cleanup()
