"""The OpenAI surface over real sockets: host app + middleware + gateway + simulator upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from support.servers import serve
from tidegate import Gateway, TidegateMiddleware
from tidegate.config import parse_config
from tidegate.providers.simulator import Simulator

MESSAGES = [{"role": "user", "content": "How do I get a refund?"}]


def host() -> Starlette:
    return Starlette(routes=[Route("/", lambda r: PlainTextResponse("host"))])


def config(sim: Simulator, **extra: Any) -> dict[str, Any]:
    return {
        "prefix": "/ai",
        "models": {"light": {"url": sim.url, "model": "qwen-light", "timeout": "5s"}},
        "max_body_size": "64kb",
        **extra,
    }


@pytest.fixture
async def gateway(sim: Simulator) -> AsyncIterator[Gateway]:
    yield Gateway(parse_config(config(sim)))


@pytest.fixture
async def url(gateway: Gateway) -> AsyncIterator[str]:
    async with serve(TidegateMiddleware(host(), gateway=gateway), lifespan="on") as base:
        yield base + "/ai"


async def sim_config(sim: Simulator, patch: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(sim.url.removesuffix("/v1") + "/sim/config", json=patch) as resp:
            assert resp.status == 200, await resp.text()


async def read_sse(resp: aiohttp.ClientResponse) -> list[str]:
    events = []
    async for line in resp.content:
        text = line.decode().rstrip("\n")
        if text.startswith("data: "):
            events.append(text[6:])
    return events


async def test_blocking_chat_completion(url: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert float(resp.headers["x-tidegate-overhead-ms"]) >= 0
            assert resp.headers["x-tidegate-model"] == "light"
    assert body["object"] == "chat.completion"
    assert body["model"] == "simulator/qwen-light"  # the upstream name, labelled a simulator
    assert body["system_fingerprint"] == "tidegate-simulator"
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] > 0


async def test_streaming_matches_blocking_and_reports_usage(url: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            blocking = (await resp.json())["choices"][0]["message"]["content"]
        request = {"model": "light", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
        async with client.post(url + "/v1/chat/completions", json=request) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert "x-tidegate-overhead-ms" in resp.headers
            events = await read_sse(resp)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == blocking
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    ("data", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_json", None),
        (b'{"model": "light"}', 400, "invalid_request", None),
        (b'{"model": "light", "messages": []}', 400, "invalid_request", "messages"),
        (b'{"model": "light", "messages": [{"content": "x"}]}', 400, "invalid_request", "messages[0]"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model_not_found", "model"),
        (b'{"model": "light", "messages": [{"role": "user", "content": "' + b"x" * 70_000 + b'"}]}', 413, "request_too_large", None),
    ],
)
async def test_bad_requests_get_openai_envelopes(url: str, data: bytes, status: int, code: str, param: str | None) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", data=data, headers={"content-type": "application/json"}) as resp:
            assert resp.status == status
            body = await resp.json()
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_unknown_endpoint_and_wrong_method(url: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/v1/nothing") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_found"
        async with client.get(url + "/v1/chat/completions") as resp:
            assert resp.status == 405


@pytest.mark.parametrize(("fault", "trail"), [("500", "light:500"), ("503", "light:503"), ("429", "light:429")])
async def test_upstream_failures_map_to_envelopes(sim: Simulator, fault: str, trail: str) -> None:
    """Upstream failures reach the client as 503 + Retry-After in OpenAI's envelope, naming the trail."""
    gateway = Gateway(parse_config(config(sim, routing={"retry": {"attempts": 1}})))
    await sim_config(sim, {"faults": {fault: 1.0}, "retry_after": 2})
    async with serve(TidegateMiddleware(host(), gateway=gateway), lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.post(base + "/ai/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            assert resp.status == 503
            body = await resp.json()
            if fault == "429":
                assert resp.headers["retry-after"] == "2"  # the upstream's own hint is passed on
    assert body["error"]["code"] == "route_unavailable"
    assert body["error"]["type"] == "server_error"
    assert trail in body["error"]["message"]
    assert sim.stats["requests"] == 1


async def test_exhausted_retries_are_503_with_the_trail(url: str, sim: Simulator) -> None:
    await sim_config(sim, {"faults": {"500": 1.0}})
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            assert resp.status == 503
            body = await resp.json()
    assert body["error"]["code"] == "route_unavailable"
    assert body["error"]["type"] == "server_error"
    assert "500" in body["error"]["message"]
    assert sim.stats["requests"] >= 3  # retried before giving up


async def test_upstream_timeout_is_reported(sim: Simulator) -> None:
    cfg = config(sim, routing={"retry": {"attempts": 1}})
    cfg["models"]["light"]["first_byte_timeout"] = "200ms"
    gateway = Gateway(parse_config(cfg))
    await sim_config(sim, {"faults": {"hang": 1.0}})
    async with serve(TidegateMiddleware(host(), gateway=gateway), lifespan="on") as base, aiohttp.ClientSession() as client:
        async with client.post(base + "/ai/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            assert resp.status == 503
            message = (await resp.json())["error"]["message"]
    assert "light:timeout" in message


async def test_mid_stream_failure_is_an_error_event(url: str, sim: Simulator) -> None:
    await sim_config(sim, {"faults": {"reset": 1.0}, "fault_after": 2})
    request = {"model": "light", "messages": MESSAGES, "stream": True}
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json=request) as resp:
            assert resp.status == 200
            events = await read_sse(resp)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream_error"


async def test_models_list(url: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(url + "/v1/models") as resp:
        body = await resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["light"]


async def test_client_disconnect_aborts_the_upstream_stream(url: str, sim: Simulator) -> None:
    await sim_config(sim, {"tokens_per_second": 20.0})
    request = {"model": "light", "messages": MESSAGES, "stream": True, "max_tokens": 200}
    async with aiohttp.ClientSession() as client:
        resp = await client.post(url + "/v1/chat/completions", json=request)
        assert resp.status == 200
        await resp.content.readline()
        resp.close()  # drop the connection mid-stream
    for _ in range(100):
        if sim.stats["aborted"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert sim.stats["aborted"] == 1


async def test_client_disconnect_aborts_a_blocking_call(url: str, sim: Simulator) -> None:
    await sim_config(sim, {"ttft": 3.0})
    async with aiohttp.ClientSession() as client:
        task = asyncio.create_task(client.post(url + "/v1/chat/completions", json={"model": "light", "messages": MESSAGES}))
        for _ in range(100):
            if sim.stats["in_flight"] >= 1:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(100):
        if sim.stats["in_flight"] == 0:
            break
        await asyncio.sleep(0.05)
    assert sim.stats["in_flight"] == 0


async def test_metrics_and_health(url: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json={"model": "light", "messages": MESSAGES}) as resp:
            assert resp.status == 200
        async with client.get(url + "/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        async with client.get(url + "/healthz") as resp:
            assert (await resp.json())["status"] == "ok"
    assert 'tidegate_requests_total{endpoint="/v1/chat/completions",status="200",surface="openai"} 1.0' in text
    assert "tidegate_upstream_duration_seconds_bucket" in text
    assert 'tidegate_tokens_total{kind="completion",model="light"}' in text
    assert "tidegate_in_flight_requests" in text
