"""The official ``openai`` SDK (sync, async, streaming) works against the surface unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from support.servers import serve_in_thread
from tidegate import Gateway, TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator, SimulatorConfig

MESSAGES: Any = [{"role": "user", "content": "How do I recover my account?"}]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sims: list[Simulator] = []

    async def make() -> Any:
        sim = Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0))
        await sim.start()
        sims.append(sim)
        config = {"models": {"light": {"url": sim.url}}, "auth": {"api_keys": {"app": "sk-test"}}}
        return TidegateMiddleware(bare, gateway=Gateway(parse_config(config)))

    async def cleanup() -> None:
        for sim in sims:
            await sim.stop()

    with serve_in_thread(make, lifespan="on", cleanup=cleanup) as url:
        yield url + "/ai/v1"


def test_sync_client(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    answer = client.chat.completions.create(model="light", messages=MESSAGES, max_tokens=8)
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens == 8
    assert [m.id for m in client.models.list()] == ["light"]


def test_sync_streaming(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="light", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    blocking = client.chat.completions.create(model="light", messages=MESSAGES)
    assert text == blocking.choices[0].message.content
    assert chunks[-1].usage is not None


async def test_async_client_and_errors(base_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    answer = await client.chat.completions.create(model="light", messages=MESSAGES)
    assert answer.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(model="light", messages=MESSAGES, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == answer.choices[0].message.content
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="missing", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    bad = openai.AsyncOpenAI(base_url=base_url, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await bad.chat.completions.create(model="light", messages=MESSAGES)
    await client.close()
    await bad.close()
