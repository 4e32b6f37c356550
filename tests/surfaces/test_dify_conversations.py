"""Dify's conversation endpoints over real sockets: list, messages, rename, delete, variables;
isolation between users and between apps (tenants); the PyPI Dify client against them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.servers import serve
from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.config.workflows import WorkflowConfig
from tidegate.engine.apps import WorkflowApps
from tidegate.providers.simulator import Simulator
from tidegate.surfaces.base import SurfaceApp
from tidegate.surfaces.dify import DifySurface

CORPUS = Path(__file__).resolve().parents[2] / "conformance" / "dify" / "workflows"
CONVERSATION_KEYS = {"id", "name", "inputs", "status", "introduction", "created_at", "updated_at"}
MESSAGE_KEYS = {
    "id", "conversation_id", "parent_message_id", "inputs", "query", "answer", "message_files", "feedback",
    "retriever_resources", "agent_thoughts", "created_at", "status", "error",
}  # fmt: skip


async def make_app(sim_url: str) -> tuple[SurfaceApp, Gateway, WorkflowApps, DifySurface]:
    workflows = {
        "memory": WorkflowConfig(file=str(CORPUS / "conversation_memory.yml"), api_keys=["app-memory"]),
        "twin": WorkflowConfig(file=str(CORPUS / "conversation_memory.yml"), api_keys=["app-twin"]),
        "echo": WorkflowConfig(file=str(CORPUS / "echo_template.yml"), api_keys=["app-echo"]),
    }
    gateway = Gateway(parse_config({"prefix": "/ai", "models": {"sim-small": {"url": sim_url}}}))
    apps = WorkflowApps(workflows, llm=gateway, metrics=gateway.metrics.registry)
    await gateway.start()
    await apps.start()
    surface = DifySurface(gateway, apps)
    return SurfaceApp(gateway, [surface], fallback=surface), gateway, apps, surface


class Api:
    def __init__(self, base: str, client: aiohttp.ClientSession, surface: DifySurface) -> None:
        self.base = base
        self.client = client
        self.surface = surface

    async def call(self, method: str, path: str, key: str | None = "app-memory", *, params: dict[str, Any] | None = None,
                   body: Any = None) -> tuple[int, Any]:  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with self.client.request(method, self.base + path, params=params, json=body, headers=headers) as resp:
            raw = await resp.read()
            return resp.status, (json.loads(raw) if raw else None)

    async def say(self, user: str, query: str, topic: str, conversation_id: str = "", key: str = "app-memory") -> str:
        body = {"query": query, "inputs": {"topic": topic}, "user": user, "response_mode": "blocking",
                "conversation_id": conversation_id}  # fmt: skip
        status, reply = await self.call("POST", "/chat-messages", key, body=body)
        assert status == 200, reply
        return str(reply["conversation_id"])


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[Api]:
    app, gateway, apps, surface = await make_app(sim.url)
    try:
        async with serve(app, lifespan="off") as url, aiohttp.ClientSession() as client:
            yield Api(url + "/ai/v1", client, surface)
    finally:
        await apps.stop()
        await gateway.stop()


async def test_list_conversations_pages_and_sorts(api: Api) -> None:
    ids = [await api.say("ada", f"question {n}", f"t{n}") for n in range(3)]
    await api.say("ada", "later", "t9", conversation_id=ids[0])  # the first one is now the most recently updated
    await api.say("bob", "mine", "x")
    status, page = await api.call("GET", "/conversations", params={"user": "ada"})
    assert status == 200 and page["limit"] == 20 and page["has_more"] is False
    assert [c["id"] for c in page["data"]] == [ids[0], ids[2], ids[1]]
    first = page["data"][0]
    assert set(first) == CONVERSATION_KEYS
    assert (first["name"], first["inputs"], first["status"]) == ("question 0", {"topic": "t0"}, "normal")
    _, head = await api.call("GET", "/conversations", params={"user": "ada", "limit": "2"})
    assert [c["id"] for c in head["data"]] == [ids[0], ids[2]] and head["has_more"] is True
    _, rest = await api.call("GET", "/conversations", params={"user": "ada", "limit": "2", "last_id": ids[2]})
    assert [c["id"] for c in rest["data"]] == [ids[1]] and rest["has_more"] is False
    _, oldest = await api.call("GET", "/conversations", params={"user": "ada", "sort_by": "created_at"})
    assert [c["id"] for c in oldest["data"]] == ids
    _, pinned = await api.call("GET", "/conversations", params={"user": "ada", "pinned": "true"})
    assert pinned["data"] == []


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"user": "ada", "limit": "0"}, 400, "invalid_param"),
        ({"user": "ada", "limit": "abc"}, 400, "invalid_param"),
        ({"user": "ada", "sort_by": "name"}, 400, "invalid_param"),
        ({"user": "ada", "last_id": "nope"}, 404, "not_found"),
    ],
)
async def test_list_conversations_rejects_bad_parameters(api: Api, params: dict[str, str], status: int, code: str) -> None:
    got, error = await api.call("GET", "/conversations", params=params)
    assert (got, error["status"], error["code"]) == (status, status, code)


async def test_messages_scroll_back_oldest_first(api: Api) -> None:
    conversation = await api.say("ada", "one", "a")
    for query in ("two", "three"):
        await api.say("ada", query, "b", conversation_id=conversation)
    status, page = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada"})
    assert status == 200 and page["has_more"] is False and page["limit"] == 20
    messages = page["data"]
    assert [m["query"] for m in messages] == ["one", "two", "three"]
    assert set(messages[0]) == MESSAGE_KEYS
    assert messages[0]["answer"] == 'turn 1: ["a"] (last: one)' and messages[0]["inputs"] == {"topic": "a"}
    assert [m["parent_message_id"] for m in messages] == [None, messages[0]["id"], messages[1]["id"]]
    assert all(m["conversation_id"] == conversation and m["status"] == "normal" for m in messages)
    _, latest = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada", "limit": "2"})
    assert [m["query"] for m in latest["data"]] == ["two", "three"] and latest["has_more"] is True
    _, older = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada", "limit": "2",
                                                          "first_id": latest["data"][0]["id"]})  # fmt: skip
    assert [m["query"] for m in older["data"]] == ["one"] and older["has_more"] is False
    status, error = await api.call("GET", "/messages", params={"user": "ada"})
    assert (status, error["code"], error["message"]) == (400, "invalid_param", "Arg conversation_id must be provided.")
    status, error = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada",
                                                               "first_id": "ghost"})  # fmt: skip
    assert (status, error["message"]) == (404, "First Message Not Exists.")


async def test_rename_sets_or_generates_a_name(api: Api) -> None:
    conversation = await api.say("ada", "where is my parcel", "p")
    status, renamed = await api.call("POST", f"/conversations/{conversation}/name", body={"name": " Parcel ", "user": "ada"})
    assert status == 200 and set(renamed) == CONVERSATION_KEYS
    assert (renamed["id"], renamed["name"]) == (conversation, "Parcel")
    _, page = await api.call("GET", "/conversations", params={"user": "ada"})
    assert page["data"][0]["name"] == "Parcel"
    _, generated = await api.call("POST", f"/conversations/{conversation}/name",
                                  body={"auto_generate": True, "user": "ada"})  # fmt: skip
    assert generated["name"] == "where is my parcel"
    status, error = await api.call("POST", f"/conversations/{conversation}/name", body={"name": "  ", "user": "ada"})
    assert (status, error["code"]) == (400, "invalid_param")


async def test_delete_removes_the_conversation(api: Api) -> None:
    conversation = await api.say("ada", "hello", "h")
    status, body = await api.call("DELETE", f"/conversations/{conversation}", params={"user": "ada"})
    assert (status, body) == (204, None)
    status, error = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada"})
    assert (status, error["code"], error["message"]) == (404, "not_found", "Conversation Not Exists.")
    status, _ = await api.call("DELETE", f"/conversations/{conversation}", params={"user": "ada"})
    assert status == 404
    # Continuing a deleted conversation is refused too.
    status, _ = await api.call("POST", "/chat-messages", body={"query": "again", "inputs": {"topic": "h"}, "user": "ada",
                                                               "conversation_id": conversation})  # fmt: skip
    assert status == 404


async def test_delete_handler_reads_the_user_from_the_json_body(api: Api) -> None:
    conversation = await api.say("ada", "hello", "h")
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    from tidegate.context import RequestContext

    ctx = RequestContext(headers={"authorization": "Bearer app-memory"})
    status = await api.surface.conversations.delete(ctx, b'{"user": "ada"}', send, param=conversation)
    assert status == 204 and sent[0]["status"] == 204
    status, _ = await api.call("GET", "/messages", params={"conversation_id": conversation, "user": "ada"})
    assert status == 404


async def test_delete_takes_the_user_from_the_json_body(api: Api) -> None:
    conversation = await api.say("ada", "hello", "h")
    status, _ = await api.call("DELETE", f"/conversations/{conversation}", body={"user": "ada"})
    assert status == 204


async def test_conversation_variables_show_current_values(api: Api) -> None:
    conversation = await api.say("ada", "about cats", "cats")
    await api.say("ada", "and dogs", "dogs", conversation_id=conversation)
    status, page = await api.call("GET", f"/conversations/{conversation}/variables", params={"user": "ada"})
    assert status == 200 and page["has_more"] is False and page["limit"] == 20
    rows = {row["name"]: row for row in page["data"]}
    assert list(rows) == ["topics", "turns", "last"]
    assert set(rows["topics"]) == {"id", "name", "value_type", "value", "description", "created_at", "updated_at"}
    assert (rows["topics"]["value"], rows["topics"]["value_type"]) == ('["cats", "dogs"]', "array[string]")
    assert rows["topics"]["description"] == "what we talked about"
    assert (rows["turns"]["value"], rows["last"]["value"]) == ("2", "and dogs")
    _, one = await api.call("GET", f"/conversations/{conversation}/variables",
                            params={"user": "ada", "variable_name": "last"})  # fmt: skip
    assert [row["name"] for row in one["data"]] == ["last"]
    _, head = await api.call("GET", f"/conversations/{conversation}/variables", params={"user": "ada", "limit": "2"})
    assert [row["name"] for row in head["data"]] == ["topics", "turns"] and head["has_more"] is True
    _, tail = await api.call("GET", f"/conversations/{conversation}/variables",
                             params={"user": "ada", "last_id": head["data"][1]["id"]})  # fmt: skip
    assert [row["name"] for row in tail["data"]] == ["last"]


async def test_conversations_are_invisible_to_other_users_and_apps(api: Api) -> None:
    mine = await api.say("ada", "secret plans", "s")
    cases = [
        ("GET", "/messages", "app-memory", {"conversation_id": mine, "user": "eve"}, None),
        ("GET", f"/conversations/{mine}/variables", "app-memory", {"user": "eve"}, None),
        ("POST", f"/conversations/{mine}/name", "app-memory", None, {"name": "pwned", "user": "eve"}),
        ("DELETE", f"/conversations/{mine}", "app-memory", {"user": "eve"}, None),
        ("GET", "/messages", "app-memory", {"conversation_id": mine}, None),  # no user: Dify's default user
        # Same user name, another app (tenant): still nothing.
        ("GET", "/messages", "app-twin", {"conversation_id": mine, "user": "ada"}, None),
        ("DELETE", f"/conversations/{mine}", "app-twin", {"user": "ada"}, None),
    ]
    for method, path, key, params, body in cases:
        status, error = await api.call(method, path, key, params=params, body=body)
        assert (status, error["code"], error["message"]) == (404, "not_found", "Conversation Not Exists."), (method, path, key)
    for key, user in (("app-memory", "eve"), ("app-twin", "ada"), ("app-memory", None)):
        _, page = await api.call("GET", "/conversations", key, params={"user": user} if user else {})
        assert page["data"] == []
    _, page = await api.call("GET", "/conversations", params={"user": "ada"})
    assert [(c["id"], c["name"]) for c in page["data"]] == [(mine, "secret plans")]


@pytest.mark.parametrize(
    ("method", "path", "key", "status", "code"),
    [
        ("GET", "/conversations", "app-echo", 400, "not_chat_app"),
        ("GET", "/messages", "app-echo", 400, "not_chat_app"),
        ("DELETE", "/conversations/x", "app-echo", 400, "not_chat_app"),
        ("GET", "/conversations", None, 401, "unauthorized"),
        ("GET", "/conversations/x/variables", "wrong", 401, "unauthorized"),
        ("POST", "/conversations", "app-memory", 405, "method_not_allowed"),
    ],
)
async def test_auth_and_app_mode_errors(api: Api, method: str, path: str, key: str | None, status: int, code: str) -> None:
    got, error = await api.call(method, path, key, params={"user": "ada", "conversation_id": "x"})
    assert (got, error["status"], error["code"]) == (status, status, code)


def test_pypi_dify_client_reads_and_manages_conversations(sim: Simulator) -> None:
    pytest.importorskip("dify_client")
    from dify_client import Client, errors, models

    from support.servers import serve_in_thread

    holder: dict[str, Any] = {}

    async def build() -> Any:
        app, holder["gateway"], holder["apps"], _ = await make_app(sim.url)
        return app

    async def cleanup() -> None:
        await holder["apps"].stop()
        await holder["gateway"].stop()

    with serve_in_thread(build, lifespan="off", cleanup=cleanup) as url:
        base = url + "/ai/v1"
        client = Client(api_key="app-memory", api_base=base)
        stream = list(client.chat_messages(models.ChatRequest(query="hi there", inputs={"topic": "owls"}, user="sdk",
                                                              response_mode=models.ResponseMode.STREAMING)))  # fmt: skip
        conversation, first_id = stream[-1].conversation_id, stream[-1].message_id
        client.chat_messages(models.ChatRequest(query="more", inputs={"topic": "bats"}, user="sdk",
                                                response_mode=models.ResponseMode.BLOCKING, conversation_id=conversation))  # fmt: skip
        # The SDK has no conversation helpers: its generic request() sends them with its auth and error mapping.
        listed = client.request(base + "/conversations", "GET", params={"user": "sdk", "limit": 5}).json()
        assert [c["id"] for c in listed["data"]] == [conversation]
        messages = client.request(base + "/messages", "GET", params={"conversation_id": conversation, "user": "sdk"}).json()
        assert messages["data"][0]["id"] == first_id
        assert [m["answer"] for m in messages["data"]] == ['turn 1: ["owls"] (last: hi there)',
                                                         'turn 2: ["owls", "bats"] (last: more)']  # fmt: skip
        renamed = client.request(base + f"/conversations/{conversation}/name", "POST",
                                 json={"name": "Birds", "user": "sdk"}).json()  # fmt: skip
        assert renamed["name"] == "Birds"
        variables = client.request(base + f"/conversations/{conversation}/variables", "GET", params={"user": "sdk"}).json()
        assert {v["name"]: v["value"] for v in variables["data"]}["turns"] == "2"
        with pytest.raises(errors.DifyResourceNotFound):
            client.request(base + "/messages", "GET", params={"conversation_id": conversation, "user": "other"})
        with pytest.raises(errors.DifyNotChatApp):
            Client(api_key="app-echo", api_base=base).request(base + "/conversations", "GET", params={"user": "sdk"})
        assert client.request(base + f"/conversations/{conversation}", "DELETE", params={"user": "sdk"}).status_code == 204
        assert client.request(base + "/conversations", "GET", params={"user": "sdk"}).json()["data"] == []
