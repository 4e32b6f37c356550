"""The response cache through every host: what a repeat costs, what bypasses it, who shares it.

The config caches the ``cached`` deployment only (exact and semantic tiers, the ``lexical``
embedder). Each scenario puts a fresh system prompt in front of its questions, so its entries
live in a scope of their own; the simulator's request counter (one simulator serves every host,
and scenarios run one at a time) shows whether a request reached the model at all.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tidegate_conformance import RunningHost
from tidegate_conformance.clients import curl_sse, openai_client, sse_data
from tidegate_conformance.clients import request as http

MODEL = "cached"
OTHER_KEY = "sk-conformance-other"  # the config's second tenant


def _scope() -> dict[str, str]:
    return {"role": "system", "content": f"You answer for conformance run {uuid.uuid4().hex}."}


def _ask(system: dict[str, str], question: str) -> list[Any]:
    return [system, {"role": "user", "content": question}]


def _model_calls(simulator_url: str) -> int:
    stats = http("GET", simulator_url.removesuffix("/v1") + "/sim/stats").json()
    return int(stats["by_endpoint"].get("chat", 0))


def _chat(host: RunningHost, messages: list[Any], *, key: str | None = None,
          headers: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:  # fmt: skip
    """(answer text, response headers) of a blocking chat request."""
    with openai_client(host, **({"api_key": key} if key else {})) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, max_tokens=8, extra_headers=headers or {}
        )
    content = raw.parse().choices[0].message.content
    assert content
    return content, dict(raw.headers)


def test_a_repeat_is_answered_from_the_cache(host: RunningHost, simulator_url: str) -> None:
    messages = _ask(_scope(), "How long does delivery take?")
    before = _model_calls(simulator_url)
    first, head = _chat(host, messages)
    assert "fwd=miss" in head["cache-status"] and "stored" in head["cache-status"]
    assert head["x-tidegate-model"] == MODEL
    second, again = _chat(host, messages)
    status = again["cache-status"]
    assert status.startswith("tidegate; hit") and "detail=exact" in status, status
    assert int(again["age"]) >= 0 and second == first
    assert _model_calls(simulator_url) == before + 1  # the repeat never reached the model


def test_no_store_bypasses_the_cache(host: RunningHost, simulator_url: str) -> None:
    messages = _ask(_scope(), "Do you ship abroad?")
    first, _ = _chat(host, messages)
    before = _model_calls(simulator_url)
    fresh, head = _chat(host, messages, headers={"Cache-Control": "no-store"})
    assert "hit" not in head["cache-status"] and "fwd=request" in head["cache-status"], head
    assert fresh == first  # the simulator answers a prompt the same way each time
    assert _model_calls(simulator_url) == before + 1
    _, later = _chat(host, messages)  # the cached entry is still there for everyone else
    assert "hit" in later["cache-status"]


def test_tenants_and_system_prompts_do_not_share_answers(host: RunningHost, simulator_url: str) -> None:
    system = _scope()
    messages = _ask(system, "What are your opening hours?")
    _chat(host, messages)
    assert "hit" in _chat(host, messages)[1]["cache-status"]
    before = _model_calls(simulator_url)
    _, other_tenant = _chat(host, messages, key=OTHER_KEY)
    assert "fwd=miss" in other_tenant["cache-status"], other_tenant
    other_system = {"role": "system", "content": system["content"] + " Be brief."}
    _, other_prompt = _chat(host, _ask(other_system, "What are your opening hours?"))
    assert "fwd=miss" in other_prompt["cache-status"], other_prompt
    assert _model_calls(simulator_url) == before + 2


def test_a_paraphrase_hits_semantically_but_a_different_question_does_not(host: RunningHost) -> None:
    system = _scope()
    answer, _ = _chat(host, _ask(system, "What is the capital of France?"))
    same, head = _chat(host, _ask(system, "What's the capital of France?"))
    assert "hit" in head["cache-status"] and "detail=semantic" in head["cache-status"], head
    assert 0 < float(head["x-tidegate-cache-similarity"]) <= 1 and same == answer
    _, other = _chat(host, _ask(system, "What is the capital of Germany?"))
    assert "fwd=miss" in other["cache-status"], other


def _sse_text(body: str) -> str:
    events = sse_data(body)
    assert events[-1] == "[DONE]", events[-3:]
    chunks: list[Any] = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_cached_answer_replays_as_a_stream(host: RunningHost, simulator_url: str) -> None:
    messages = _ask(_scope(), "Can I return an opened item?")
    answer, _ = _chat(host, messages)
    before = _model_calls(simulator_url)
    body = {"model": MODEL, "messages": messages, "max_tokens": 8, "stream": True}
    head, raw = curl_sse(host.api_base + "/chat/completions", body, host.auth)
    lines = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.splitlines()[1:])}
    assert lines["content-type"].startswith("text/event-stream")
    assert "hit" in lines["cache-status"], head
    assert _sse_text(raw) == answer
    assert _model_calls(simulator_url) == before


def test_a_streamed_answer_is_cached_once_complete(host: RunningHost, simulator_url: str) -> None:
    messages = _ask(_scope(), "Is there a warranty?")
    with openai_client(host) as client:
        first = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, max_tokens=8, stream=True
        )
        assert "fwd=miss" in first.headers["cache-status"]
        streamed = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
        before = _model_calls(simulator_url)
        second = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, max_tokens=8, stream=True
        )
        assert "hit" in second.headers["cache-status"]
        replayed = "".join(c.choices[0].delta.content or "" for c in second.parse() if c.choices)
    assert streamed and replayed == streamed
    answer, head = _chat(host, messages)  # and a blocking client gets the same answer
    assert "hit" in head["cache-status"] and answer == streamed
    assert _model_calls(simulator_url) == before
