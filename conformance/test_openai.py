"""The OpenAI surface through every host, driven by the official SDK and by curl."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import (
    async_openai_client,
    curl_sse,
    openai_client,
    sse_data,
    timed_lines,
)

MESSAGES: Any = [{"role": "user", "content": "How do I reset my password?"}]


def test_sync_blocking_and_streaming_agree(host: RunningHost) -> None:
    with openai_client(host) as client:
        answer = client.chat.completions.create(model="light", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="light", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
    assert answer.object == "chat.completion"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_raw_response_headers(host: RunningHost) -> None:
    with openai_client(host) as client:
        raw = client.chat.completions.with_raw_response.create(model="light", messages=MESSAGES, max_tokens=4)
    assert raw.headers["x-tidegate-model"] == "light"
    assert float(raw.headers["x-tidegate-overhead-ms"]) >= 0
    assert raw.parse().usage.completion_tokens == 4


async def test_async_client(host: RunningHost) -> None:
    async with async_openai_client(host) as client:
        answer = await client.chat.completions.create(model="light", messages=MESSAGES, max_tokens=6)
        stream = await client.chat.completions.create(model="light", messages=MESSAGES, max_tokens=6, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == answer.choices[0].message.content


def test_models_list(host: RunningHost) -> None:
    with openai_client(host) as client:
        models = [m.id for m in client.models.list()]
    # Tiers come first (``auto`` asks the scorer to pick one), then every chat deployment.
    assert models == ["auto", "fast", "deep", "flaky", "light", "paced", "broken", "small", "large", "unreachable", "cached"]


def test_curl_reads_sse_unchanged(host: RunningHost) -> None:
    body = {"model": "light", "messages": MESSAGES, "stream": True, "max_tokens": 5}
    head, raw = curl_sse(host.api_base + "/chat/completions", body, host.auth)
    assert head.splitlines()[0].split()[1] == "200"
    assert "content-type: text/event-stream" in head.lower()
    assert raw.endswith("data: [DONE]\n\n")
    assert "\n\n\n" not in raw and all(block.startswith("data: ") for block in raw.split("\n\n") if block)
    chunks = [json.loads(data) for data in sse_data(raw)[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 5


def test_failing_upstream_is_an_openai_error(host: RunningHost) -> None:
    with openai_client(host) as client, pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="broken", messages=MESSAGES)
    # 502 from the upstream, or 503 once routing gave up on it: either way OpenAI's envelope.
    assert info.value.status_code in (502, 503)
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "server_error"
    assert info.value.code in ("upstream_error", "route_unavailable")


def test_stream_is_not_buffered_by_the_host(host: RunningHost) -> None:
    """Through every host, SSE chunks reach the client as the upstream produces them."""
    body = {"model": "paced", "messages": MESSAGES, "stream": True}
    reply, lines = timed_lines(host.api_base + "/chat/completions", body, headers=host.auth)
    assert reply.status == 200
    events = [(t, line) for t, line in lines if line.startswith(b"data: ")]
    assert events[-1][1].strip() == b"data: [DONE]"
    # `paced` sends 10 tokens at 25/s: ~0.4 s between the first and last event unless buffered.
    assert events[-1][0] - events[0][0] > 0.2, "the stream arrived in one burst"


async def test_concurrent_streams(host: RunningHost) -> None:
    """Several streams at once (each holds a worker thread in a WSGI host) all complete intact."""

    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        messages: Any = [{"role": "user", "content": f"question number {i}"}]
        stream = await client.chat.completions.create(model="paced", messages=messages, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async with async_openai_client(host) as client:
        texts = await asyncio.gather(*(one(client, i) for i in range(8)))
        expected = await client.chat.completions.create(
            model="paced", messages=[{"role": "user", "content": "question number 3"}]
        )
    assert all(len(text.split()) == 10 for text in texts)
    assert texts[3] == expected.choices[0].message.content
