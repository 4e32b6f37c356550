"""The LLM simulator over real sockets: content, streaming, embeddings, faults, runtime control, CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.config.simulator import simulator_config_from
from tidegate.config.types import Duration
from tidegate.errors import UsageError
from tidegate.providers.simulator import Simulator, SimulatorConfig
from tidegate.providers.simulator_cli import build_parser, config_from_args
from tidegate.providers.simulator_engine import sample_ttft
from tidegate.providers.simulator_text import plan_reply

HELLO = [{"role": "user", "content": "Tell me about tides and gates"}]


async def _no_tasks_left() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    for _ in range(50):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return []
        await asyncio.sleep(0.02)
    return pending


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatorConfig(tokens=24, seed=7))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
    assert await _no_tasks_left() == []


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def chat(
    client: aiohttp.ClientSession,
    sim: Simulator,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> tuple[int, dict[str, Any]]:
    payload = {"model": "qwen", "messages": HELLO, **body}
    async with client.post(f"{sim.url}/chat/completions", json=payload, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def sse(resp: aiohttp.ClientResponse) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    events = []
    async for line in resp.content:
        text = line.decode().rstrip("\r\n")
        if text.startswith("data: "):
            events.append(text[6:])
    return events


async def stream_chat(
    client: aiohttp.ClientSession,
    sim: Simulator,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> list[str]:
    payload = {"model": "qwen", "messages": HELLO, "stream": True, **body}
    async with client.post(f"{sim.url}/chat/completions", json=payload, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return await sse(resp)


def content_of(events: list[str]) -> str:
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


# -- content --------------------------------------------------------------------------------


async def test_non_stream_is_deterministic_and_labelled(simulator, client):
    status, first = await chat(client, simulator)
    _, again = await chat(client, simulator)
    _, other = await chat(client, simulator, messages=[{"role": "user", "content": "different"}])
    _, other_model = await chat(client, simulator, model="llama")
    assert status == 200
    text = first["choices"][0]["message"]["content"]
    assert text == again["choices"][0]["message"]["content"]
    assert text != other["choices"][0]["message"]["content"]
    assert text != other_model["choices"][0]["message"]["content"]
    assert first["model"] == "simulator/qwen"
    assert first["system_fingerprint"] == "tidegate-simulator"
    assert first["object"] == "chat.completion"
    assert first["id"] != again["id"]
    assert len(text.split()) == 24 and text == text.strip()
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 6 + 4, "completion_tokens": 24, "total_tokens": 34}


async def test_length_limits_and_token_header(simulator, client):
    _, cut = await chat(client, simulator, max_tokens=5)
    _, cut2 = await chat(client, simulator, max_completion_tokens=3)
    _, exact = await chat(client, simulator, headers={"X-Sim-Tokens": "40"})
    _, full = await chat(client, simulator)
    full_words = full["choices"][0]["message"]["content"].split()
    assert cut["choices"][0]["message"]["content"].split() == full_words[:5]
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 5
    assert cut2["usage"]["completion_tokens"] == 3
    assert exact["usage"]["completion_tokens"] == 40
    assert exact["choices"][0]["finish_reason"] == "stop"
    _, roomy = await chat(client, simulator, max_tokens=100)
    assert roomy["choices"][0]["finish_reason"] == "stop"
    assert roomy["usage"]["completion_tokens"] == 24


async def test_stream_reassembles_to_the_non_stream_text(simulator, client):
    _, whole = await chat(client, simulator)
    events = await stream_chat(client, simulator)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert content_of(events) == whole["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "simulator/qwen" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)  # only when asked for


async def test_stream_include_usage_sends_a_final_usage_chunk(simulator, client):
    _, whole = await chat(client, simulator, max_tokens=6)
    events = await stream_chat(
        client, simulator, max_tokens=6, stream_options={"include_usage": True}
    )
    chunks = [json.loads(e) for e in events[:-1]]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


async def test_pacing_headers_delay_the_answer(simulator, client):
    started = time.monotonic()
    events = await stream_chat(
        client, simulator, headers={"X-Sim-TTFT-Ms": "60", "X-Sim-TPS": "100", "X-Sim-Tokens": "5"}
    )
    elapsed = time.monotonic() - started
    assert len(content_of(events).split()) == 5
    assert elapsed >= 0.06 + 4 / 100 - 0.005  # lower bound only: sleeps never end early


async def test_legacy_completions(simulator, client):
    body = {"model": "qwen", "prompt": "Once upon a time", "max_tokens": 4}
    async with client.post(f"{simulator.url}/completions", json=body) as resp:
        data = await resp.json()
    async with client.post(f"{simulator.url}/completions", json={**body, "stream": True}) as resp:
        events = await sse(resp)
    assert data["object"] == "text_completion"
    assert data["model"] == "simulator/qwen"
    assert len(data["choices"][0]["text"].split()) == 4
    assert data["choices"][0]["finish_reason"] == "length"
    streamed = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert streamed == data["choices"][0]["text"]
    assert events[-1] == "[DONE]"


async def test_models_are_labelled(simulator, client):
    async with client.get(f"{simulator.url}/models") as resp:
        data = await resp.json()
    assert [m["id"] for m in data["data"]] == simulator.config.models
    assert {m["owned_by"] for m in data["data"]} == {"tidegate-simulator"}


# -- embeddings -----------------------------------------------------------------------------


async def embed(client: aiohttp.ClientSession, sim: Simulator, **body: Any) -> dict[str, Any]:
    async with client.post(f"{sim.url}/embeddings", json={"model": "bge", **body}) as resp:
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def test_embeddings_are_deterministic_unit_vectors(simulator, client):
    texts = ["How do I reset my password?", "how do i reset my password", "Best pizza in Rome"]
    data = await embed(client, simulator, input=texts)
    single = await embed(client, simulator, input=texts[0])
    vectors = np.array([d["embedding"] for d in data["data"]])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert single["data"][0]["embedding"] == data["data"][0]["embedding"]
    assert [d["index"] for d in data["data"]] == [0, 1, 2]
    assert data["model"] == "simulator/bge"
    assert data["usage"]["prompt_tokens"] == 6 + 6 + 4
    # same words -> same vector; unrelated text -> nearly orthogonal
    assert vectors[0] @ vectors[1] == pytest.approx(1.0, abs=1e-5)
    assert abs(vectors[0] @ vectors[2]) < 0.3


async def test_embeddings_base64_and_dimensions(simulator, client):
    floats = await embed(client, simulator, input="hello tides", dimensions=64)
    packed = await embed(
        client, simulator, input="hello tides", dimensions=64, encoding_format="base64"
    )
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert len(floats["data"][0]["embedding"]) == 64
    assert np.allclose(decoded, floats["data"][0]["embedding"])


# -- errors and faults ----------------------------------------------------------------------


async def test_bad_requests_get_the_openai_envelope(simulator, client):
    url = f"{simulator.url}/chat/completions"
    async with client.post(
        url, data=b"{not json", headers={"Content-Type": "application/json"}
    ) as r:
        bad_json = (r.status, await r.json())
    async with client.post(url, json={"model": "qwen"}) as r:
        no_messages = (r.status, await r.json())
    async with client.post(
        url, json={"model": "qwen", "messages": HELLO}, headers={"X-Sim-Fault": "boom"}
    ) as r:
        bad_fault = (r.status, await r.json())
    async with client.post(url, json={"model": "qwen", "messages": HELLO, "max_tokens": 0}) as r:
        bad_limit = (r.status, await r.json())
    async with client.get(f"{simulator.url}/nowhere") as r:
        missing = r.status
    assert bad_json[0] == 400 and bad_json[1]["error"]["type"] == "invalid_request_error"
    assert no_messages[0] == 400 and no_messages[1]["error"]["param"] == "messages"
    assert bad_fault[0] == 400 and "X-Sim-Fault" in bad_fault[1]["error"]["message"]
    assert bad_limit[0] == 400 and bad_limit[1]["error"]["param"] == "max_tokens"
    assert missing == 404


@pytest.mark.parametrize("kind", ["500", "503"])
async def test_server_error_faults(simulator, client, kind):
    status, body = await chat(client, simulator, headers={"X-Sim-Fault": kind})
    assert status == int(kind)
    assert body["error"]["type"] == "server_error"
    assert simulator.stats["faults"][kind] == 1


async def test_429_fault_carries_retry_after(simulator, client):
    url = f"{simulator.url}/chat/completions"
    body = {"model": "qwen", "messages": HELLO}
    async with client.post(url, json=body, headers={"X-Sim-Fault": "429"}) as resp:
        default = (resp.status, resp.headers.get("Retry-After"), await resp.json())
    async with client.post(
        url, json=body, headers={"X-Sim-Fault": "429", "X-Sim-Retry-After": "2.5"}
    ) as resp:
        custom = resp.headers.get("Retry-After")
    assert default[0] == 429 and default[1] == "1"
    assert default[2]["error"]["code"] == "rate_limit_exceeded"
    assert custom == "2.5"


async def test_reset_mid_stream_breaks_the_client_after_some_chunks(simulator, client):
    payload = {"model": "qwen", "messages": HELLO, "stream": True}
    headers = {"X-Sim-Fault": "reset", "X-Sim-Fault-After": "3"}
    seen: list[str] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with client.post(
            f"{simulator.url}/chat/completions", json=payload, headers=headers
        ) as resp:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    seen.append(line[6:].decode())
    assert 1 <= len(seen) <= 4  # role chunk + 3 tokens, and nothing after
    assert "[DONE]" not in "".join(seen)
    assert len(content_of(seen).split()) == 3


async def test_reset_without_stream_closes_the_connection(simulator, client):
    with pytest.raises(aiohttp.ClientConnectionError):
        await chat(client, simulator, headers={"X-Sim-Fault": "reset"})
    status, _ = await chat(client, simulator)  # the server is fine afterwards
    assert status == 200


async def test_malformed_faults(simulator, client):
    events = await stream_chat(client, simulator, headers={"X-Sim-Fault": "malformed"})
    bad = []
    for event in events[:-1]:
        try:
            json.loads(event)
        except ValueError:
            bad.append(event)
    assert len(bad) == 1
    assert events[-1] == "[DONE]"
    async with client.post(
        f"{simulator.url}/chat/completions",
        json={"model": "qwen", "messages": HELLO},
        headers={"X-Sim-Fault": "malformed"},
    ) as resp:
        raw = await resp.read()
    assert resp.status == 200
    with pytest.raises(ValueError):
        json.loads(raw)


async def test_hang_is_cut_by_the_client_and_the_server_stops_cleanly(client):
    sim = Simulator()
    await sim.start()
    try:
        with pytest.raises(asyncio.TimeoutError):
            async with client.post(
                f"{sim.url}/chat/completions",
                json={"model": "qwen", "messages": HELLO},
                headers={"X-Sim-Fault": "hang"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            ):
                pass
        await wait_for(lambda: sim.stats["in_flight"] == 0)
        assert sim.stats["aborted"] == 1
        # another hung request is still in flight when the server stops
        pending = asyncio.create_task(chat(client, sim, headers={"X-Sim-Fault": "hang"}))
        await wait_for(lambda: sim.stats["in_flight"] == 1)
        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 1.5
        with pytest.raises(aiohttp.ClientConnectionError):
            await pending
        assert sim.stats["aborted"] == 1  # stopping is not a client abort
        assert sim.state == "closed"
    finally:
        await sim.stop()
    assert await _no_tasks_left() == []


async def test_hang_mid_stream_after_some_chunks(simulator, client):
    payload = {"model": "qwen", "messages": HELLO, "stream": True}
    headers = {"X-Sim-Fault": "hang", "X-Sim-Fault-After": "2"}
    seen: list[str] = []
    with pytest.raises(asyncio.TimeoutError):
        async with client.post(
            f"{simulator.url}/chat/completions",
            json=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(sock_read=0.2),
        ) as resp:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    seen.append(line[6:].decode())
    assert len(content_of(seen).split()) == 2


async def test_fault_rates_follow_the_seed():
    async def statuses(seed: int) -> list[int]:
        cfg = SimulatorConfig(seed=seed, faults={"500": 0.3, "429": 0.2})
        async with Simulator(cfg) as sim, aiohttp.ClientSession() as session:
            return [(await chat(session, sim))[0] for _ in range(40)]

    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again
    assert first != other
    assert set(first) == {200, 429, 500}
    assert 8 <= first.count(500) <= 20  # ~12 expected
    assert 3 <= first.count(429) <= 16  # ~8 expected


async def test_runtime_config_breaks_and_heals_the_upstream(simulator, client):
    base = simulator.url.removesuffix("/v1")
    async with client.post(f"{base}/sim/config", json={"fail_all": True, "fail_kind": "503"}) as r:
        assert r.status == 200
        assert (await r.json())["fail_all"] is True
    assert (await chat(client, simulator))[0] == 503
    async with client.post(f"{base}/sim/config", json={"fail_all": False, "ttft": "80ms"}) as r:
        assert r.status == 200
    started = time.monotonic()
    assert (await chat(client, simulator))[0] == 200
    assert time.monotonic() - started >= 0.075
    async with client.post(f"{base}/sim/config", json={"faults": {"500": 2}}) as r:
        rejected = (r.status, await r.json())
    async with client.post(f"{base}/sim/config", json={"tfft": 1}) as r:
        unknown = await r.json()
    async with client.get(f"{base}/sim/config") as r:
        current = await r.json()
    assert rejected[0] == 400 and "$.faults" in rejected[1]["error"]["message"]
    assert "tfft" in unknown["error"]["message"]
    assert current["ttft"] == pytest.approx(0.08) and current["faults"] == {}
    simulator.update(ttft=0, tokens=3)  # the in-process twin of POST /sim/config
    _, body = await chat(client, simulator)
    assert body["usage"]["completion_tokens"] == 3


# -- tools ----------------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "function": {"name": "order_status", "parameters": {"type": "object"}}}
]
ASK = [
    {
        "role": "user",
        "content": 'Check call:order_status({"id": 42}) and call:weather({"city": "Oslo"})',
    }
]


async def test_tool_call_directives_non_stream(simulator, client):
    _, body = await chat(client, simulator, messages=ASK, tools=TOOLS)
    choice = body["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert [c["function"]["name"] for c in calls] == ["order_status", "weather"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"id": 42}
    _, plain = await chat(client, simulator, messages=ASK)  # no tools offered: plain text
    assert plain["choices"][0]["finish_reason"] == "stop"


async def test_tool_call_directives_stream(simulator, client):
    events = await stream_chat(client, simulator, messages=ASK, tools=TOOLS)
    calls: dict[int, dict[str, str]] = {}
    for event in events[:-1]:
        delta = json.loads(event)["choices"][0]["delta"]
        for part in delta.get("tool_calls") or ():
            call = calls.setdefault(part["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] += part.get("id", "")
            call["name"] += part.get("function", {}).get("name", "")
            call["arguments"] += part.get("function", {}).get("arguments", "")
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "tool_calls"
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_1", "call_2"]
    assert json.loads(calls[1]["arguments"]) == {"city": "Oslo"}


async def test_tool_results_come_back_in_the_answer(simulator, client):
    _, first = await chat(client, simulator, messages=ASK, tools=TOOLS)
    calls = first["choices"][0]["message"]["tool_calls"]
    history = [
        *ASK,
        first["choices"][0]["message"],
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "order 42 shipped"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "Oslo is sunny"},
    ]
    _, answer = await chat(client, simulator, messages=history, tools=TOOLS)
    events = await stream_chat(client, simulator, messages=history, tools=TOOLS)
    text = answer["choices"][0]["message"]["content"]
    assert "order 42 shipped" in text and "Oslo is sunny" in text
    assert content_of(events) == text
    follow_up = [*history, {"role": "assistant", "content": text},
                 {"role": "user", "content": 'again call:order_status({"id": 7})'}]  # fmt: skip
    _, again = await chat(client, simulator, messages=follow_up, tools=TOOLS)
    assert [c["id"] for c in again["choices"][0]["message"]["tool_calls"]] == ["call_3"]


# -- stats, lifecycle, CLI ------------------------------------------------------------------


async def test_stats_count_and_reset(simulator, client):
    await chat(client, simulator)
    await stream_chat(client, simulator)
    await embed(client, simulator, input="x")
    await chat(client, simulator, headers={"X-Sim-Fault": "500"})
    async with client.get(f"{simulator.url.removesuffix('/v1')}/sim/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 4
    assert stats["by_endpoint"] == {"chat": 3, "completions": 0, "embeddings": 1, "models": 0}
    assert stats["in_flight"] == 0 and stats["streams"] == 1
    assert stats["faults"]["500"] == 1 and stats["faults_total"] == 1
    assert stats["completion_tokens"] == 48
    async with client.post(f"{simulator.url.removesuffix('/v1')}/sim/reset") as r:
        assert (await r.json())["requests"] == 0
    assert simulator.stats["by_endpoint"]["chat"] == 0


async def test_client_abort_mid_stream_is_counted(simulator, client):
    payload = {"model": "qwen", "messages": HELLO, "stream": True}
    headers = {"X-Sim-TPS": "50", "X-Sim-Tokens": "200"}
    async with client.post(
        f"{simulator.url}/chat/completions", json=payload, headers=headers
    ) as resp:
        await resp.content.readline()
        resp.close()  # walk away mid-stream
    await wait_for(lambda: simulator.stats["aborted"] == 1)
    await wait_for(lambda: simulator.stats["in_flight"] == 0)


async def test_lifecycle_misuse_raises_usage_error():
    sim = Simulator()
    with pytest.raises(UsageError):
        _ = sim.url
    async with sim:
        with pytest.raises(UsageError):
            await sim.start()
    with pytest.raises(UsageError):
        await sim.start()
    await sim.stop()  # idempotent


def test_cli_flags_become_a_checked_config():
    args = build_parser().parse_args(
        ["--ttft", "50ms", "--ttft-jitter", "10ms", "--ttft-dist", "lognormal", "--tps", "200",
         "--fault", "500=0.1", "--fault", "429=0.05", "--seed", "3", "--embedding-dim", "64"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.ttft == pytest.approx(0.05) and cfg.ttft_jitter == pytest.approx(0.01)
    assert cfg.ttft_dist == "lognormal" and cfg.tokens_per_second == 200
    assert cfg.faults == {"500": 0.1, "429": 0.05}
    assert (cfg.seed, cfg.embedding_dim, cfg.tokens) == (3, 64, 24)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.faults"):
        config_from_args(build_parser().parse_args(["--fault", "teapot=0.1"]))
    with pytest.raises(msgspec.ValidationError, match="summing to <= 1"):
        simulator_config_from({"faults": {"500": 0.7, "hang": 0.5}})


async def test_cli_process_serves_and_exits_on_sigterm():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidegate.providers.simulator", "--port", "0", "--tokens", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
        assert line.startswith(
            "tidegate LLM simulator (not a model) listening on http://127.0.0.1:"
        )
        url = line.rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            body = {"model": "qwen", "messages": HELLO}
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                data = await resp.json()
        assert data["usage"]["completion_tokens"] == 4
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("dist", "low", "high"),
    [("fixed", 0.05, 0.05), ("uniform", 0.03, 0.07), ("lognormal", 0.0, 10.0)],
)
def test_ttft_distributions(dist, low, high):
    cfg = SimulatorConfig(ttft=Duration(0.05), ttft_jitter=Duration(0.02), ttft_dist=dist)
    rng = random.Random(5)
    draws = [sample_ttft(cfg, rng) for _ in range(4000)]
    assert low <= min(draws) and max(draws) <= high
    assert statistics.fmean(draws) == pytest.approx(0.05, rel=0.05)
    if dist == "lognormal":
        assert statistics.stdev(draws) == pytest.approx(0.02, rel=0.15)
        assert max(draws) > 0.1  # the long right tail
    if dist != "fixed":
        assert len(set(draws)) > 3000


async def test_openai_sdk_talks_to_the_simulator(simulator):
    from openai import AsyncOpenAI

    sdk = AsyncOpenAI(base_url=simulator.url, api_key="not-needed", max_retries=0)
    try:
        reply = await sdk.chat.completions.create(model="qwen", messages=HELLO)
        stream = await sdk.chat.completions.create(
            model="qwen", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        vectors = await sdk.embeddings.create(
            model="bge", input=["one", "two"]
        )  # base64 on the wire
    finally:
        await sdk.close()
    assert reply.model == "simulator/qwen"
    assert "".join(parts) == reply.choices[0].message.content
    assert usage is not None and usage.completion_tokens == 24
    assert [len(d.embedding) for d in vectors.data] == [384, 384]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    args=st.lists(st.dictionaries(st.text(max_size=6), _json_values, max_size=3), max_size=3),
    filler=st.sampled_from(["", "please ", "then ) and } "]),
)
def test_tool_directives_round_trip_any_json_arguments(args, filler):
    text = " ".join(f"{filler}call:tool_{i}({json.dumps(a)})" for i, a in enumerate(args))
    messages = [{"role": "user", "content": text + " call:ping()"}]
    reply = plan_reply(messages, model="m", natural=24, limit=None, tools=True)
    assert reply.tool_calls is not None
    assert [c.name for c in reply.tool_calls] == [*(f"tool_{i}" for i in range(len(args))), "ping"]
    assert [json.loads(c.arguments) for c in reply.tool_calls] == [*args, {}]
    assert [c.id for c in reply.tool_calls] == [f"call_{i + 1}" for i in range(len(args) + 1)]
