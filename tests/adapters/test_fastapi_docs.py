"""The FastAPI adapter's docs follow the gateway's route listing; ``protect:`` guards host routes."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import aiohttp
import tidegate_fastapi
from fastapi import APIRouter, FastAPI
from tidegate_fastapi._docs import describe, template

from support.servers import serve
from tidegate import TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

GREET = Path(__file__).resolve().parents[2] / "conformance" / "tidegate_conformance" / "workflows" / "greet.yml"
APP_KEY = "app-docs-greet"


def config(sim: Simulator, **extra: Any) -> Any:
    return parse_config({"models": {"light": {"url": sim.url}}, **extra})


def with_workflows(sim: Simulator, **extra: Any) -> Any:
    return config(sim, workflows={"greet": {"file": str(GREET), "api_keys": [APP_KEY]}}, **extra)


def test_regex_routes_become_path_templates() -> None:
    assert template("/v1/models") == "/v1/models"
    assert template(r"^/v1/workflows/tasks/([^/]+)/stop$") == "/v1/workflows/tasks/{param}/stop"
    assert template(r"^/v1/items/(?P<item_id>[^/]+)/parts/([0-9]+)$") == "/v1/items/{item_id}/parts/{param2}"
    assert template(r"^/v1/files/.*$") is None  # not literal segments and groups: not documented
    # A known endpoint keeps its documented parameter name whatever the regex called it.
    path, doc = describe("POST", "/v1/workflows/tasks/{param}/stop", "dify")
    assert (path, doc.name) == ("/v1/workflows/tasks/{task_id}/stop", "workflows_stop")
    path, doc = describe("GET", "/v1/brand-new", "openai")
    assert path == "/v1/brand-new" and doc.name == "openai_get_v1_brand_new" and doc.body is None


async def test_docs_list_every_route_the_gateway_lists(sim: Simulator) -> None:
    app = FastAPI()
    gateway = tidegate_fastapi.mount(app, with_workflows(sim, auth={"api_keys": {"app": "sk-app"}}))
    doc = app.openapi()
    shape = functools.partial(re.sub, r"\{[^}]*\}", "{}")  # parameter names aside
    documented = {(method.upper(), shape(path)) for path, item in doc["paths"].items() for method in item}
    listed = {(m, shape("/ai" + (template(p) or p))) for m, p, _ in TidegateMiddleware(None, gateway=gateway).routes()}
    assert documented == listed
    assert {"/ai/v1/chat-messages", "/ai/v1/chat-messages/{task_id}/stop"} <= set(doc["paths"])
    assert ("POST", "/ai/v1/workflows/run") in documented
    run = doc["paths"]["/ai/v1/workflows/run"]["post"]
    assert run["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/WorkflowRunRequest")
    assert run["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/DifyError")
    assert "text/event-stream" in run["responses"]["200"]["content"]
    assert run["security"] == [{"DifyAppKey": []}]  # the app's key, not the gateway's
    stop = doc["paths"]["/ai/v1/workflows/tasks/{task_id}/stop"]["post"]
    assert [(p["name"], p["in"]) for p in stop["parameters"]] == [("task_id", "path")]
    chat = doc["paths"]["/ai/v1/chat/completions"]["post"]
    assert chat["security"] == [{"HTTPBearer": []}]
    embeddings = doc["paths"]["/ai/v1/embeddings"]["post"]
    assert embeddings["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/EmbeddingsRequest")
    names = [route.name for route in app.routes if getattr(route, "path", "").startswith("/ai")]
    assert len(names) == len(set(names))  # one route name per endpoint


async def test_dify_routes_are_served_through_their_documented_routes(sim: Simulator) -> None:
    app = FastAPI()
    router = APIRouter()
    tidegate_fastapi.mount(router, with_workflows(sim), prefix="/assist")
    app.include_router(router, prefix="/api")
    auth = {"authorization": f"Bearer {APP_KEY}"}
    run = {"inputs": {"name": "Ada", "visits": 2}, "response_mode": "blocking", "user": "u1"}
    async with serve(app, lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.post(base + "/api/assist/v1/workflows/run", json=run, headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json())["data"]["outputs"] == {"greeting": "Hello Ada, visit number 2!"}
        # A path parameter is put back into tidegate's own path (a stop of an unknown task succeeds).
        url = base + "/api/assist/v1/workflows/tasks/no%20such%20task/stop"
        async with client.post(url, json={"user": "u1"}, headers=auth) as resp:
            assert (resp.status, await resp.json()) == (200, {"result": "success"})
        async with client.post(base + "/api/assist/v1/workflows/run", json=run) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
        async with client.get(base + "/api/assist/v1/workflows/run", headers=auth) as resp:
            assert resp.status == 405 and (await resp.json())["code"] == "method_not_allowed"
    assert "/api/assist/v1/chat-messages" in app.openapi()["paths"]


async def test_protect_rules_guard_the_apps_own_routes(sim: Simulator) -> None:
    app = FastAPI()

    @app.get("/api/report")
    async def report() -> dict[str, str]:
        return {"report": "ready"}

    @app.get("/open")
    async def open_route() -> dict[str, str]:
        return {"open": "yes"}

    rules = [{"path": "/api/*", "key": "ip", "requests": "2/minute"}]
    tidegate_fastapi.mount(app, config(sim, protect=rules, auth={"api_keys": {"app": "sk-app"}}))
    async with serve(app, lifespan="on") as base, aiohttp.ClientSession() as client:
        statuses = []
        for _ in range(3):
            async with client.get(base + "/api/report") as resp:
                statuses.append(resp.status)
                last = resp.headers, await resp.json()
        assert statuses == [200, 200, 429]
        headers, body = last
        assert int(headers["Retry-After"]) >= 1 and headers["RateLimit-Remaining"] == "0"
        assert body["error"]["code"] and body["error"]["status"] == 429
        for _ in range(3):  # neither unguarded host routes nor the surfaces count against it
            async with client.get(base + "/open") as resp:
                assert resp.status == 200
            async with client.get(base + "/ai/healthz") as resp:
                assert resp.status == 200
