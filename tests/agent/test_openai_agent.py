"""A server-side agent answering OpenAI chat requests (what the OpenAI surface delegates to)."""

from __future__ import annotations

from typing import Any

import pytest

from tidegate.errors import RequestError

AGENT = {"model": "light", "tools": ["order_status"], "serve_as": ["support-bot"], "instruction": "Be brief."}


async def test_agent_for_model_only_for_served_names(make_runtime: Any) -> None:
    async with make_runtime(agents={"support": AGENT}) as runtime:
        assert runtime.agent_for_model("support-bot") is runtime.agents["support"]
        assert runtime.agent_for_model("light") is None


async def test_complete_openai_runs_tools_server_side(make_runtime: Any) -> None:
    body = {"model": "support-bot", "messages": [
        {"role": "system", "content": "client system prompt"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": 'where is call:order_status({"order_id": 12})'}]},
    ], "tools": [{"type": "function", "function": {"name": "client_side_tool"}}]}  # fmt: skip
    async with make_runtime(agents={"support": AGENT}) as runtime:
        spec = runtime.agent_for_model("support-bot")
        response = await runtime.complete_openai(spec, body)  # type: ignore[arg-type]
        listed, _ = await runtime.sessions.list_conversations(None, None)
    assert response["object"] == "chat.completion" and response["model"] == "support-bot"
    choice = response["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Tool results: order 12 shipped"}
    assert choice["finish_reason"] == "stop"
    assert response["usage"]["total_tokens"] > 0
    assert response["agent"] == {"name": "support", "status": "succeeded", "steps": 2, "tool_calls": 1}
    assert listed == []  # OpenAI requests carry their own history: nothing is stored


async def test_stream_openai_sends_chunks_with_usage(make_runtime: Any) -> None:
    body = {"model": "support-bot", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": 'call:order_status({"order_id": 3})'}]}  # fmt: skip
    async with make_runtime(agents={"support": AGENT}) as runtime:
        spec = runtime.agent_for_model("support-bot")
        blocking = await runtime.complete_openai(spec, {**body, "stream": False})  # type: ignore[arg-type]
        chunks = [chunk async for chunk in runtime.stream_openai(spec, body)]  # type: ignore[arg-type]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == blocking["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_capped_runs_finish_with_length(make_runtime: Any) -> None:
    body = {"model": "support-bot", "messages": [{"role": "user", "content": 'call:order_status({"order_id": 1}) call@2:order_status({"order_id": 2})'}]}
    async with make_runtime(agents={"support": {**AGENT, "max_steps": 1}}) as runtime:
        response = await runtime.complete_openai(runtime.agents["support"], body)
        with pytest.raises(RequestError, match="`user` message"):
            await runtime.complete_openai(runtime.agents["support"], {"messages": [{"role": "system", "content": "x"}]})
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["agent"]["status"] == "max_steps"
