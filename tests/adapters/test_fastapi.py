"""The FastAPI adapter: documented routes served by tidegate, lifespan merge, Depends(gateway)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tidegate_fastapi
from fastapi import APIRouter, FastAPI, Request
from tidegate_fastapi import GatewayDep

from support.servers import serve
from tidegate import Gateway, UsageError
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

MESSAGES = [{"role": "user", "content": "What are your opening hours?"}]
KEY = {"authorization": "Bearer sk-app"}


def config(sim: Simulator, **extra: Any) -> Any:
    return parse_config({"models": {"light": {"url": sim.url}}, **extra})


async def get(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.get(url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def post(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.post(url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_routes_are_documented_with_schemas(sim: Simulator) -> None:
    app = FastAPI()
    tidegate_fastapi.mount(app, config(sim, auth={"api_keys": {"app": "sk-app"}}))
    doc = app.openapi()
    assert {p for p in doc["paths"] if p.startswith("/ai")} == {
        "/ai/v1/chat/completions", "/ai/v1/embeddings", "/ai/v1/models", "/ai/metrics", "/ai/healthz",
    }  # fmt: skip  (the catch-all stays out of the docs; no Dify routes without workflows)
    chat = doc["paths"]["/ai/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert chat["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    assert chat["tags"] == ["tidegate"]
    assert chat["security"] == [{"HTTPBearer": []}]
    assert "security" not in doc["paths"]["/ai/healthz"]["get"]
    request_schema = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages"} <= set(request_schema["required"])


async def test_no_security_scheme_without_keys(sim: Simulator) -> None:
    app = FastAPI()
    tidegate_fastapi.mount(app, config(sim), prefix="/llm", tags=["ai"])
    doc = app.openapi()
    chat = doc["paths"]["/llm/v1/chat/completions"]["post"]
    assert "security" not in chat and chat["tags"] == ["ai"]


async def test_requests_are_answered_by_tidegate_not_fastapi(sim: Simulator) -> None:
    app = FastAPI()
    tidegate_fastapi.mount(app, config(sim, auth={"api_keys": {"app": "sk-app"}}))
    async with serve(app, lifespan="on") as base:
        status, body = await post(base + "/ai/v1/chat/completions", json={"model": "light", "messages": MESSAGES}, headers=KEY)
        assert status == 200 and body["object"] == "chat.completion"
        # FastAPI would answer 422 {"detail": …}; tidegate answers with OpenAI's envelope.
        status, body = await post(base + "/ai/v1/chat/completions", json={"model": "light"}, headers=KEY)
        assert status == 400 and body["error"]["code"] == "invalid_request"
        status, body = await post(base + "/ai/v1/chat/completions", json={"model": "light", "messages": MESSAGES})
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, body = await get(base + "/ai/v1/chat/completions", headers=KEY)
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
        status, body = await get(base + "/ai/v1/elsewhere", headers=KEY)
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await get(base + "/aix")
        assert status == 404 and body == {"detail": "Not Found"}  # beside the prefix: FastAPI's own


async def test_streaming_passes_through(sim: Simulator) -> None:
    app = FastAPI()
    tidegate_fastapi.mount(app, config(sim))
    request = {"model": "light", "messages": MESSAGES, "stream": True, "max_tokens": 4}
    async with serve(app, lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.post(base + "/ai/v1/chat/completions", json=request) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in resp.content if line.startswith(b"data: ")]
    assert lines[-1] == b"data: [DONE]\n"
    assert len(lines) >= 6


async def test_router_under_a_prefix_with_the_users_lifespan(sim: Simulator) -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        seen.append(f"user startup, gateway {gateway.state}")
        yield {"db": "connected"}
        seen.append(f"user shutdown, gateway {gateway.state}")

    app = FastAPI(lifespan=lifespan)
    router = APIRouter()
    gateway = tidegate_fastapi.mount(router, config(sim), prefix="/assist")

    @router.get("/whoami")
    async def whoami(request: Request, gw: GatewayDep) -> dict[str, Any]:
        answer = await gw.chat(MESSAGES, model="light", max_tokens=3)
        return {"same": gw is gateway, "db": request.state.db, "words": answer["usage"]["completion_tokens"]}

    app.include_router(router, prefix="/api")
    async with serve(app, lifespan="on") as base:
        status, body = await get(base + "/api/whoami")
        assert (status, body) == (200, {"same": True, "db": "connected", "words": 3})
        status, body = await get(base + "/api/assist/healthz")
        assert body["state"] == "running"
        status, body = await post(base + "/api/assist/v1/chat/completions", json={"model": "light", "messages": MESSAGES})
        assert status == 200
    # FastAPI nests an included router's lifespan inside the app's, so the app's own lifespan
    # runs around the gateway's here (mount on the app itself to have it the other way round).
    assert seen == ["user startup, gateway unopened", "user shutdown, gateway stopped"]
    assert gateway.state == "stopped"
    assert "/api/assist/v1/chat/completions" in app.openapi()["paths"]


async def test_app_lifespan_runs_inside_the_gateways(sim: Simulator) -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        answer = await gateway.chat(MESSAGES, model="light", max_tokens=2)  # usable at startup
        seen.append(f"startup {gateway.state} {answer['usage']['completion_tokens']}")
        yield
        seen.append(f"shutdown {gateway.state}")

    app = FastAPI(lifespan=lifespan)
    gateway = tidegate_fastapi.mount(app, config(sim))
    async with serve(app, lifespan="on") as base:
        assert (await get(base + "/ai/healthz"))[1]["state"] == "running"
    assert seen == ["startup running 2", "shutdown running"]
    assert gateway.state == "stopped"


async def test_dependency_starts_the_gateway_lazily_without_lifespan(sim: Simulator) -> None:
    app = FastAPI()
    gateway = tidegate_fastapi.mount(app, config(sim))

    @app.get("/state")
    async def state(gw: GatewayDep) -> dict[str, str]:
        return {"state": gw.state}

    try:
        async with serve(app, lifespan="off") as base:
            assert await get(base + "/state") == (200, {"state": "running"})
    finally:
        await gateway.stop()


async def test_a_started_gateway_stays_the_callers(sim: Simulator) -> None:
    gateway = Gateway(config(sim))
    await gateway.start()
    app = FastAPI()
    assert tidegate_fastapi.mount(app, gateway) is gateway
    async with serve(app, lifespan="on") as base:
        assert (await get(base + "/ai/healthz"))[0] == 200
    assert gateway.state == "running"
    await gateway.stop()


async def test_config_file_path(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "tidegate.yaml"
    path.write_text(f"prefix: /gw\nmodels:\n  light: {{url: '{sim.url}'}}\n")
    app = FastAPI()
    gateway = tidegate_fastapi.mount(app, str(path))
    assert gateway.config.prefix == "/gw"
    async with serve(app, lifespan="on") as base:
        status, body = await get(base + "/gw/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["light"]


async def test_misuse_is_reported(sim: Simulator) -> None:
    with pytest.raises(UsageError, match="Expected a FastAPI app or an APIRouter"):
        tidegate_fastapi.mount(object(), config(sim))  # type: ignore[arg-type]
    app = FastAPI()
    request = Request({"type": "http", "app": app, "headers": [], "state": {}})
    with pytest.raises(UsageError, match=r"tidegate_fastapi\.mount"):
        await tidegate_fastapi.gateway_dependency(request)
