"""Dify apps through every host, driven by a Dify client from PyPI (``dify-client-python``).

Two apps of ours (``tidegate_conformance/workflows/``): ``greet``, a workflow (start →
template-transform → end, exact outputs), and ``assistant``, a chatflow (start → llm → answer)
against the simulator. The client is used as its users use it: typed requests, blocking and
streaming responses, and its exception classes for Dify's error envelope.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import async_dify_client, curl_sse, dify_client, request, sse_data

models = pytest.importorskip("dify_client.models", reason="dify-client-python is not installed")
errors = pytest.importorskip("dify_client.errors")

GREET_KEY = "app-conformance-greet"
CHAT_KEY = "app-conformance-chat"
BLOCKING = models.ResponseMode.BLOCKING
STREAMING = models.ResponseMode.STREAMING
TIMEOUT = 15.0


def _user() -> str:
    return f"conformance-{uuid.uuid4().hex[:8]}"


def _as(model: Any, data: Any) -> Any:
    """An event's ``data`` as the client's model for it. The client's pydantic union keeps some
    payloads (``node_finished``, ``workflow_finished``) as plain dicts, so validate those here:
    it checks that they carry every field the client's model requires."""
    return model.model_validate(data) if isinstance(data, dict) else data


def test_workflow_blocking(host: RunningHost) -> None:
    client = dify_client(host, GREET_KEY)
    req = models.WorkflowsRunRequest(inputs={"name": "Ada", "visits": 3}, response_mode=BLOCKING, user=_user())
    result = client.run_workflows(req, timeout=TIMEOUT)
    assert result.data.status == models.WorkflowStatus.SUCCEEDED
    assert result.data.outputs == {"greeting": "Hello Ada, visit number 3!"}
    assert result.data.error is None
    assert result.workflow_run_id == result.data.id and result.task_id
    assert result.data.total_steps == 3


def test_workflow_streaming(host: RunningHost) -> None:
    client = dify_client(host, GREET_KEY)
    req = models.WorkflowsRunRequest(inputs={"name": "Grace", "visits": 1}, response_mode=STREAMING, user=_user())
    events = list(client.run_workflows(req, timeout=TIMEOUT))
    kinds = [str(event.event) for event in events]
    assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_finished", kinds
    started = [_as(models.NodeStartedData, e.data) for e in events if e.event == models.StreamEvent.NODE_STARTED]
    finished = [_as(models.NodeFinishedData, e.data) for e in events if e.event == models.StreamEvent.NODE_FINISHED]
    assert [n.node_id for n in started] == [n.node_id for n in finished] == ["start", "greet", "end"]
    assert [n.node_type for n in finished] == ["start", "template-transform", "end"]
    assert all(n.status == models.WorkflowStatus.SUCCEEDED for n in finished)
    chunks = "".join(event.data.text for event in events if event.event == models.StreamEvent.TEXT_CHUNK)
    assert chunks == "Hello Grace, visit number 1!"
    last = _as(models.WorkflowFinishedData, events[-1].data)
    assert last.status == models.WorkflowStatus.SUCCEEDED
    assert last.outputs == {"greeting": "Hello Grace, visit number 1!"}
    assert len({event.task_id for event in events}) == 1
    assert {event.workflow_run_id for event in events} == {last.id}


def test_chatflow_streaming_then_blocking_in_one_conversation(host: RunningHost) -> None:
    client = dify_client(host, CHAT_KEY)
    user = _user()
    first = list(client.chat_messages(
        models.ChatRequest(query="What are your opening hours?", response_mode=STREAMING, user=user),
        timeout=TIMEOUT,
    ))  # fmt: skip
    messages = [event for event in first if event.event == models.StreamEvent.MESSAGE]
    end = first[-1]
    assert end.event == models.StreamEvent.MESSAGE_END, [str(e.event) for e in first]
    answer = "".join(event.answer for event in messages)
    assert answer.startswith("Assistant: ") and len(answer.split()) == 1 + 6  # llm max_tokens: 6
    conversation = end.conversation_id
    assert conversation and {event.conversation_id for event in messages} == {conversation}
    assert {event.message_id for event in messages} == {end.message_id}
    assert end.metadata is not None and end.metadata.usage.completion_tokens == 6
    workflow_kinds = [str(e.event) for e in first if e.event not in (models.StreamEvent.MESSAGE, models.StreamEvent.MESSAGE_END)]
    assert workflow_kinds[0] == "workflow_started" and "workflow_finished" in workflow_kinds

    second = client.chat_messages(
        models.ChatRequest(query="And on Sundays?", response_mode=BLOCKING, user=user, conversation_id=conversation),
        timeout=TIMEOUT,
    )  # fmt: skip
    assert second.mode == models.Mode.ADVANCED_CHAT
    assert second.answer.startswith("Assistant: ") and second.message_id != end.message_id
    # The second turn's prompt carries the first turn (the LLM node's memory window).
    assert second.metadata.usage.prompt_tokens > end.metadata.usage.prompt_tokens


async def test_async_client_runs_both_apps_at_once(host: RunningHost) -> None:
    async def greet(client: Any, i: int) -> Any:
        req = models.WorkflowsRunRequest(inputs={"name": f"n{i}", "visits": i}, response_mode=BLOCKING, user=_user())
        return await client.arun_workflows(req, timeout=TIMEOUT)

    async def chat(client: Any) -> list[Any]:
        req = models.ChatRequest(query="Tell me a story", response_mode=STREAMING, user=_user())
        stream = await client.achat_messages(req, timeout=TIMEOUT)
        return [event async for event in stream]

    async with async_dify_client(host, GREET_KEY) as greeter, async_dify_client(host, CHAT_KEY) as assistant:
        *runs, events = await asyncio.gather(*(greet(greeter, i) for i in range(4)), chat(assistant))
    assert [run.data.outputs["greeting"] for run in runs] == [f"Hello n{i}, visit number {i}!" for i in range(4)]
    assert events[-1].event == models.StreamEvent.MESSAGE_END


def test_bad_app_key_is_difys_error_envelope(host: RunningHost) -> None:
    req = models.WorkflowsRunRequest(inputs={"name": "Eve"}, response_mode=BLOCKING, user=_user())
    with pytest.raises(errors.DifyAPIError) as info:
        dify_client(host, "app-not-a-key").run_workflows(req, timeout=TIMEOUT)
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    streaming = req.model_copy(update={"response_mode": STREAMING})
    with pytest.raises(errors.DifyAPIError) as info:  # a stream refused before it starts: same error
        list(dify_client(host, "app-not-a-key").run_workflows(streaming, timeout=TIMEOUT))
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    reply = request("POST", host.api_base + "/workflows/run", body=req.model_dump(mode="json"),
                    headers={"authorization": "Bearer app-not-a-key"})  # fmt: skip
    assert reply.status == 401 and reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"code": "unauthorized", "message": "Access token is invalid", "status": 401}


def test_app_errors_map_to_the_clients_exceptions(host: RunningHost) -> None:
    user = _user()
    with pytest.raises(errors.DifyNotChatApp):  # a workflow app's key on the chat route
        dify_client(host, GREET_KEY).chat_messages(
            models.ChatRequest(query="hi", response_mode=BLOCKING, user=user), timeout=TIMEOUT
        )
    with pytest.raises(errors.DifyInvalidParam) as info:  # a required input missing
        dify_client(host, GREET_KEY).run_workflows(
            models.WorkflowsRunRequest(inputs={}, response_mode=BLOCKING, user=user), timeout=TIMEOUT
        )
    assert info.value.status == 400 and "Name is required" in info.value.message


def test_sse_and_headers_reach_the_client_unchanged(host: RunningHost) -> None:
    body: dict[str, Any] = {"inputs": {"name": "Lin", "visits": 2}, "response_mode": "streaming", "user": _user()}
    head, raw = curl_sse(host.api_base + "/workflows/run", body, {"authorization": f"Bearer {GREET_KEY}"})
    assert head.splitlines()[0].split()[1] == "200"
    assert "content-type: text/event-stream" in head.lower()
    assert "x-tidegate-workflow-version:" in head.lower()
    events = [json.loads(data) for data in sse_data(raw)]
    assert [e["event"] for e in events][::len(events) - 1] == ["workflow_started", "workflow_finished"]
    assert events[-1]["data"]["outputs"] == {"greeting": "Hello Lin, visit number 2!"}
    blocking = request("POST", host.api_base + "/workflows/run", body={**body, "response_mode": "blocking"},
                       headers={"authorization": f"Bearer {GREET_KEY}"})  # fmt: skip
    assert blocking.status == 200 and blocking.headers["x-tidegate-workflow-version"]
    assert float(blocking.headers["x-tidegate-overhead-ms"]) >= 0


def test_app_info_and_parameters(host: RunningHost) -> None:
    auth = {"authorization": f"Bearer {GREET_KEY}"}
    info = request("GET", host.api_base + "/info", headers=auth)
    assert info.status == 200 and info.json()["mode"] == "workflow"
    assert info.json()["name"] == "Conformance greeter"
    params = request("GET", host.api_base + "/parameters", headers=auth).json()
    form = [next(iter(item.values()))["variable"] for item in params["user_input_form"]]
    assert form == ["name", "visits"]
