"""The upstream client against the simulator: deadlines, faults and error mapping."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tidegate import UpstreamError, UpstreamTimeout, UsageError
from tidegate.config import parse_config
from tidegate.context import RequestContext
from tidegate.providers.simulator import Simulator
from tidegate.providers.upstream import Upstream

BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}]}


def upstream(url: str, **model: Any) -> Upstream:
    config = parse_config({"models": {"m": {"url": url, **model}}})
    return Upstream("m", config.models["m"])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_chat_stream_and_embeddings(sim: Simulator) -> None:
    client = upstream(sim.url, model="served-name")
    await client.start()
    ctx = RequestContext()
    try:
        answer = await client.chat(BODY, ctx=ctx)
        assert answer["model"] == "simulator/served-name"
        chunks = [c async for c in client.stream(BODY)]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == answer["choices"][0]["message"]["content"]
        vectors = await client.embeddings({"input": ["a", "b"]})
        assert len(vectors["data"]) == 2
        assert ctx.upstream_seconds > 0
    finally:
        await client.close()
    assert client.state == "closed"


async def test_use_before_start_is_a_usage_error(sim: Simulator) -> None:
    client = upstream(sim.url)
    with pytest.raises(UsageError, match="start"):
        await client.chat(BODY)
    await client.start()
    with pytest.raises(UsageError, match="cannot start"):
        await client.start()
    await client.close()


async def test_connection_refused_keeps_no_status() -> None:
    client = upstream(f"http://127.0.0.1:{closed_port()}/v1")
    await client.start()
    try:
        with pytest.raises(UpstreamError, match="connection failed") as info:
            await client.chat(BODY)
        assert info.value.upstream_status is None
        assert info.value.__cause__ is not None
    finally:
        await client.close()


@pytest.mark.parametrize("fault", ["500", "503", "429"])
async def test_status_errors_keep_status_and_retry_after(sim: Simulator, fault: str) -> None:
    client = upstream(sim.url, headers={"X-Sim-Fault": fault, "X-Sim-Retry-After": "7"})
    await client.start()
    try:
        with pytest.raises(UpstreamError) as info:
            await client.chat(BODY)
        assert info.value.upstream_status == int(fault)
        if fault == "429":
            assert info.value.retry_after == 7
            assert info.value.status == 429
        with pytest.raises(UpstreamError):
            async for _ in client.stream(BODY):
                pass
    finally:
        await client.close()


async def test_first_byte_timeout(sim: Simulator) -> None:
    client = upstream(sim.url, first_byte_timeout="150ms", headers={"X-Sim-Fault": "hang"})
    await client.start()
    try:
        with pytest.raises(UpstreamTimeout, match=r"no response headers within 0\.15s"):
            await client.chat(BODY)
    finally:
        await client.close()


async def test_total_deadline_cuts_a_slow_stream(sim: Simulator) -> None:
    client = upstream(sim.url, timeout="400ms", headers={"X-Sim-TPS": "10", "X-Sim-Tokens": "100"})
    await client.start()
    received = 0
    try:
        with pytest.raises(UpstreamTimeout, match=r"0\.4s deadline"):
            async for _ in client.stream(BODY):
                received += 1
    finally:
        await client.close()
    assert 1 <= received < 100


async def test_read_timeout_between_chunks(sim: Simulator) -> None:
    client = upstream(sim.url, read_timeout="100ms", headers={"X-Sim-TPS": "2", "X-Sim-Tokens": "10"})
    await client.start()
    try:
        with pytest.raises(UpstreamTimeout):
            async for _ in client.stream(BODY):
                pass
    finally:
        await client.close()


@pytest.mark.parametrize(("fault", "match"), [("malformed", "malformed stream chunk"), ("reset", "connection failed|closed the stream")])
async def test_broken_streams(sim: Simulator, fault: str, match: str) -> None:
    client = upstream(sim.url, headers={"X-Sim-Fault": fault})
    await client.start()
    try:
        with pytest.raises(UpstreamError, match=match):
            async for _ in client.stream(BODY):
                pass
    finally:
        await client.close()


async def test_non_json_body_is_an_upstream_error(sim: Simulator) -> None:
    client = upstream(sim.url, headers={"X-Sim-Fault": "malformed"})
    await client.start()
    try:
        with pytest.raises(UpstreamError, match="not JSON"):
            await client.chat(BODY)
    finally:
        await client.close()
