"""The Dify surface over real sockets: gateway + workflow apps + simulator, raw HTTP and the PyPI
Dify client (``dify-client-python``), blocking and streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from support.servers import serve
from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.config.workflows import CanaryConfig, HttpNodeConfig, WorkflowConfig
from tidegate.engine.apps import WorkflowApps
from tidegate.providers.simulator import Simulator
from tidegate.surfaces.base import SurfaceApp
from tidegate.surfaces.dify import DifySurface

CORPUS = Path(__file__).resolve().parents[2] / "conformance" / "dify" / "workflows"


def hanging_workflow(path: Path, url: str) -> Path:
    data = yaml.safe_load((CORPUS / "echo_template.yml").read_text())
    nodes = data["workflow"]["graph"]["nodes"]
    nodes[1]["data"] = {"type": "http-request", "title": "Slow", "method": "get", "url": url,
                        "authorization": {"type": "no-auth"}, "headers": "", "params": "",
                        "body": {"type": "none", "data": []}}  # fmt: skip
    nodes[2]["data"]["outputs"] = [{"variable": "greeting", "value_selector": ["1730000000002", "body"]}]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
async def dify(sim: Simulator, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async def hang(request: aiohttp.web.Request) -> aiohttp.web.Response:
        await asyncio.sleep(3600)
        return aiohttp.web.Response()

    slow_app = aiohttp.web.Application()
    slow_app.router.add_get("/hang", hang)
    slow_runner = aiohttp.web.AppRunner(slow_app, handler_cancellation=True)
    await slow_runner.setup()
    site = aiohttp.web.TCPSite(slow_runner, "127.0.0.1", 0)
    await site.start()
    slow_url = f"http://127.0.0.1:{slow_runner.addresses[0][1]}/hang"

    canary = tmp_path / "echo_v2.yml"
    text = (CORPUS / "echo_template.yml").read_text().replace("Hello {{ name }}!", "Hi {{ name }} (v2)")
    canary.write_text(text, encoding="utf-8")
    workflows = {
        "echo": WorkflowConfig(file=str(CORPUS / "echo_template.yml"), api_keys=["app-echo"]),
        "chat": WorkflowConfig(file=str(CORPUS / "chat_llm_answer.yml"), api_keys=["app-chat"]),
        "memory": WorkflowConfig(file=str(CORPUS / "conversation_memory.yml"), api_keys=["app-memory"]),
        "slow": WorkflowConfig(file=str(hanging_workflow(tmp_path / "slow.yml", slow_url)), api_keys=["app-slow"],
                               http=HttpNodeConfig(allow_private=True)),
        "split": WorkflowConfig(file=str(CORPUS / "echo_template.yml"), api_keys=["app-split"],
                                canary=CanaryConfig(file=str(canary), percent=50)),
    }
    gateway = Gateway(parse_config({"prefix": "/ai", "models": {"sim-small": {"url": sim.url}}}))
    apps = WorkflowApps(workflows, llm=gateway, metrics=gateway.metrics.registry)
    surface = DifySurface(gateway, apps)
    app = SurfaceApp(gateway, [surface], fallback=surface)
    await gateway.start()
    await apps.start()
    try:
        async with serve(app, lifespan="off") as url:
            yield {"url": url + "/ai/v1", "surface": surface, "apps": apps, "gateway": gateway}
    finally:
        await apps.stop()
        await gateway.stop()
        await slow_runner.cleanup()


async def post(base: str, path: str, key: str | None, body: Any) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as client, client.post(base + path, json=body, headers=headers) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def sse(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            events.append(json.loads(block[6:]))
        elif block.strip() == "event: ping":
            events.append({"event": "ping"})
    return events


async def test_workflow_run_blocking(dify: dict[str, Any]) -> None:
    status, headers, body = await post(dify["url"], "/workflows/run", "app-echo",
                                       {"inputs": {"name": "Ada"}, "response_mode": "blocking", "user": "u1"})
    assert status == 200
    payload = json.loads(body)
    assert payload["task_id"] == payload["workflow_run_id"] == payload["data"]["id"]
    assert payload["data"]["status"] == "succeeded"
    assert payload["data"]["outputs"] == {"greeting": "Hello Ada!"}
    assert payload["data"]["workflow_id"] == "echo@primary"
    assert headers["x-tidegate-workflow-version"] == "echo@primary"
    assert payload["data"]["total_steps"] == 3


async def test_workflow_run_streaming(dify: dict[str, Any]) -> None:
    status, headers, body = await post(dify["url"], "/workflows/run", "app-echo",
                                       {"inputs": {"name": "Bo"}, "response_mode": "streaming", "user": "u1"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse(body)
    assert [e["event"] for e in events] == [
        "workflow_started", "node_started", "node_finished", "node_started", "text_chunk", "node_finished",
        "node_started", "node_finished", "workflow_finished",
    ]
    run_id = events[0]["workflow_run_id"]
    assert all(e["task_id"] == run_id and e["workflow_run_id"] == run_id for e in events)
    assert events[4]["data"] == {"text": "Hello Bo!", "from_variable_selector": ["1730000000002", "output"]}
    assert events[-1]["data"]["outputs"] == {"greeting": "Hello Bo!"}


@pytest.mark.parametrize(
    ("path", "key", "body", "status", "code", "message"),
    [
        ("/workflows/run", None, {"user": "u"}, 401, "unauthorized", "Authorization header must be provided and start with 'Bearer'"),
        ("/workflows/run", "nope", {"user": "u"}, 401, "unauthorized", "Access token is invalid"),
        ("/workflows/run", "app-echo", {"inputs": {"name": "x"}}, 400, "invalid_param", "Arg user must be provided."),
        ("/workflows/run", "app-echo", {"inputs": {}, "user": "u"}, 400, "invalid_param", "name is required in input form"),
        ("/workflows/run", "app-chat", {"user": "u"}, 400, "not_workflow_app", "Please check if your app mode matches the right API route."),
        ("/chat-messages", "app-echo", {"user": "u", "query": "hi"}, 400, "not_chat_app", "Please check if your app mode matches the right API route."),
        ("/chat-messages", "app-chat", {"user": "u", "query": " "}, 400, "invalid_param", "query is required"),
        ("/chat-messages", "app-chat", {"user": "u", "query": "hi", "conversation_id": "ghost"}, 404, "not_found", None),
        ("/completion-messages", "app-chat", {"user": "u", "inputs": {}}, 400, "app_unavailable", "App unavailable, please check your app configurations."),
    ],
)
async def test_errors_use_difys_envelope(dify: dict[str, Any], path: str, key: str | None, body: Any, status: int,
                                         code: str, message: str | None) -> None:  # fmt: skip
    got, _, raw = await post(dify["url"], path, key, body)
    payload = json.loads(raw)
    assert got == status
    assert payload["status"] == status and payload["code"] == code
    if message is not None:
        assert payload["message"] == message


async def test_chatflow_streams_messages_and_keeps_the_conversation(dify: dict[str, Any]) -> None:
    url = dify["url"]
    first = {"inputs": {"topic": "cats"}, "query": "tell me about cats", "response_mode": "streaming", "user": "u1"}
    _, _, raw = await post(url, "/chat-messages", "app-memory", first)
    events = sse(raw)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "workflow_started" and kinds[-2:] == ["workflow_finished", "message_end"]
    messages = [e for e in events if e["event"] == "message"]
    conversation = events[0]["conversation_id"]
    assert all(m["conversation_id"] == conversation and m["message_id"] == events[-1]["message_id"] for m in messages)
    assert "".join(m["answer"] for m in messages) == 'turn 1: ["cats"] (last: tell me about cats)'
    assert events[-1]["metadata"]["usage"]["total_tokens"] == 0
    second = {"inputs": {"topic": "dogs"}, "query": "and dogs", "response_mode": "blocking", "user": "u1",
              "conversation_id": conversation}
    status, _, raw = await post(url, "/chat-messages", "app-memory", second)
    reply = json.loads(raw)
    assert status == 200 and reply["conversation_id"] == conversation and reply["mode"] == "advanced-chat"
    assert reply["answer"] == 'turn 2: ["cats", "dogs"] (last: and dogs)'
    # Another user cannot reach that conversation.
    status, _, _ = await post(url, "/chat-messages", "app-memory", {**second, "user": "intruder"})
    assert status == 404


async def test_chatflow_llm_tokens_and_memory(dify: dict[str, Any]) -> None:
    body = {"query": "hello there", "response_mode": "streaming", "user": "u2"}
    _, _, raw = await post(dify["url"], "/chat-messages", "app-chat", body)
    events = sse(raw)
    messages = [e["answer"] for e in events if e["event"] == "message"]
    assert messages[0] == "Bot: " and len(messages) > 3
    end = events[-1]
    assert end["event"] == "message_end" and end["metadata"]["usage"]["completion_tokens"] == 8
    again = {**body, "query": "more", "conversation_id": end["conversation_id"], "response_mode": "blocking"}
    _, _, raw = await post(dify["url"], "/chat-messages", "app-chat", again)
    assert json.loads(raw)["answer"].startswith("Bot: ")


async def test_parameters_and_info(dify: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer app-memory"}) as client:
        async with client.get(dify["url"] + "/parameters") as resp:
            params = await resp.json()
        async with client.get(dify["url"] + "/info") as resp:
            info = await resp.json()
    assert params["user_input_form"] == [
        {"text-input": {"label": "topic", "variable": "topic", "required": True, "default": "", "max_length": 256}}
    ]
    assert params["opening_statement"] == "" and params["suggested_questions"] == []
    assert info == {"name": "Memory", "description": "", "tags": [], "mode": "advanced-chat", "author_name": ""}


async def test_pings_keep_a_quiet_stream_alive_and_stop_ends_it(dify: dict[str, Any]) -> None:
    surface: DifySurface = dify["surface"]
    surface.ping_interval = 0.05
    task = asyncio.create_task(post(dify["url"], "/workflows/run", "app-slow",
                                    {"inputs": {"name": "x"}, "response_mode": "streaming", "user": "u9"}))
    apps: WorkflowApps = dify["apps"]
    while not apps._tasks:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    task_id = next(iter(apps._tasks))
    assert apps.stop_task("slow", task_id, "someone-else") is False
    status, _, body = await post(dify["url"], f"/workflows/tasks/{task_id}/stop", "app-slow", {"user": "u9"})
    assert status == 200 and json.loads(body) == {"result": "success"}  # over HTTP: a patterned route
    _status, _, raw = await task
    events = sse(raw)
    assert {"event": "ping"} in events
    assert events[-1]["event"] == "workflow_finished" and events[-1]["data"]["status"] == "stopped"


async def test_canary_split_is_sticky_per_user(dify: dict[str, Any]) -> None:
    seen: dict[str, set[str]] = {}
    for index in range(24):
        user = f"user{index % 12}"
        _, headers, raw = await post(dify["url"], "/workflows/run", "app-split",
                                     {"inputs": {"name": "A"}, "response_mode": "blocking", "user": user})
        version = headers["x-tidegate-workflow-version"]
        greeting = json.loads(raw)["data"]["outputs"]["greeting"]
        assert greeting == ("Hi A (v2)" if version == "split@canary" else "Hello A!")
        seen.setdefault(user, set()).add(version)
    assert all(len(versions) == 1 for versions in seen.values())
    assert {v for versions in seen.values() for v in versions} == {"split@primary", "split@canary"}
    metrics = dify["gateway"].metrics.render().decode()
    assert 'tidegate_workflow_runs_total{status="succeeded",version="canary",workflow="split"}' in metrics


def test_pypi_dify_client_runs_a_workflow_and_a_chatflow(sim: Any, tmp_path: Path) -> None:
    pytest.importorskip("dify_client")
    from dify_client import Client, models

    from support.servers import serve_in_thread

    holder: dict[str, Any] = {}

    async def make_app() -> Any:
        workflows = {
            "echo": WorkflowConfig(file=str(CORPUS / "echo_template.yml"), api_keys=["app-echo"]),
            "memory": WorkflowConfig(file=str(CORPUS / "conversation_memory.yml"), api_keys=["app-memory"]),
        }
        gateway = Gateway(parse_config({"prefix": "/ai", "models": {"sim-small": {"url": sim.url}}}))
        apps = WorkflowApps(workflows, llm=gateway, metrics=gateway.metrics.registry)
        await gateway.start()
        await apps.start()
        holder.update(gateway=gateway, apps=apps)
        surface = DifySurface(gateway, apps)
        return SurfaceApp(gateway, [surface], fallback=surface)

    async def cleanup() -> None:
        await holder["apps"].stop()
        await holder["gateway"].stop()

    with serve_in_thread(make_app, lifespan="off", cleanup=cleanup) as url:
        echo = Client(api_key="app-echo", api_base=url + "/ai/v1")
        blocking = echo.run_workflows(models.WorkflowsRunRequest(
            inputs={"name": "Cy"}, response_mode=models.ResponseMode.BLOCKING, user="sdk"))
        assert blocking.data.status == "succeeded" and blocking.data.outputs == {"greeting": "Hello Cy!"}
        streamed = list(echo.run_workflows(models.WorkflowsRunRequest(
            inputs={"name": "Cy"}, response_mode=models.ResponseMode.STREAMING, user="sdk")))
        assert streamed[0].event == "workflow_started" and streamed[-1].event == "workflow_finished"
        # The SDK leaves workflow event data as dicts (its union matches Dict first).
        assert streamed[-1].data["outputs"] == {"greeting": "Hello Cy!"}
        chat = Client(api_key="app-memory", api_base=url + "/ai/v1")
        stream = list(chat.chat_messages(models.ChatRequest(
            query="hello", inputs={"topic": "owls"}, response_mode=models.ResponseMode.STREAMING, user="sdk")))
        text = "".join(e.answer for e in stream if e.event == "message")
        assert text == 'turn 1: ["owls"] (last: hello)'
        conversation = stream[-1].conversation_id
        reply = chat.chat_messages(models.ChatRequest(
            query="again", inputs={"topic": "bats"}, response_mode=models.ResponseMode.BLOCKING, user="sdk",
            conversation_id=conversation))
        assert reply.answer == 'turn 2: ["owls", "bats"] (last: again)'
        assert stream[-1].event == "message_end"

