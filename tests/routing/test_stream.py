from __future__ import annotations

from typing import Any

import pytest

from tidegate.errors import RouteUnavailable, UpstreamError, UsageError

from .conftest import chat, cluster

POOL = {
    "tiers": [{"name": "pool", "models": ["a", "b"], "balance": "round-robin"}],
    "retry": {"backoff": {"min": "10ms", "max": "20ms"}},
}
PRICES = {"input_price": 1.0, "output_price": 2.0}


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice.get("delta", {}).get("content") or ""
        for chunk in chunks
        for choice in chunk.get("choices", [])
    )


async def test_decision_before_first_chunk_and_cost_after_last(no_leaked_tasks: Any) -> None:
    async with cluster(POOL, {"a": PRICES, "b": PRICES}) as c:
        body = {**chat("hi"), "model": "pool", "stream_options": {"include_usage": True}}
        async with c.router.stream(body) as stream:
            decision = await stream.open()
            assert decision.model == "a" and decision.cost == 0.0
            assert c.router.deployments["a"].in_flight == 1
            chunks = [chunk async for chunk in stream]
        plain, _ = await c.router.chat({**chat("hi"), "model": "a"})
        assert text_of(chunks) == plain["choices"][0]["message"]["content"]
        usage = chunks[-1]["usage"]
        assert decision.cost == pytest.approx(
            (usage["prompt_tokens"] + 2 * usage["completion_tokens"]) / 1e6
        )
        assert c.router.deployments["a"].in_flight == 0
        assert (
            c.metric("tidegate_route_cost_total", {"tenant": "-", "tier": "pool", "model": "a"}) > 0
        )
    await no_leaked_tasks()


async def test_failures_before_the_first_chunk_fail_over() -> None:
    async with cluster(
        POOL, {"a": {}, "b": {}}, sims={"a": {"fail_all": True, "fail_kind": "503"}}
    ) as c:
        stream = c.router.stream({**chat("hi"), "model": "pool"})
        chunks = [chunk async for chunk in stream]  # iterating opens it
        assert stream.decision is not None
        assert stream.decision.model == "b" and stream.decision.trail == ("a:503", "b:ok")
        assert text_of(chunks)
        await stream.aclose()


async def test_no_retry_after_the_first_chunk() -> None:
    models = {"a": {"headers": {"X-Sim-Fault": "reset", "X-Sim-Fault-After": "2"}}, "b": {}}
    async with cluster(POOL, models) as c:
        stream = c.router.stream({**chat("hi"), "model": "pool"})
        decision = await stream.open()
        assert decision.model == "a"
        received: list[dict[str, Any]] = []
        with pytest.raises(UpstreamError):
            async for chunk in stream:
                received.append(chunk)
        assert received  # the client already had bytes: replaying elsewhere would duplicate them
        assert c.requests("b") == 0
        assert c.router.deployments["a"].breaker.counts() == (2, 1)  # first chunk ok, then broken
        assert c.router.deployments["a"].in_flight == 0
        assert (
            c.metric("tidegate_route_attempts_total", {"model": "a", "outcome": "broken_stream"})
            == 1
        )
        await stream.aclose()


async def test_closing_an_unread_stream_frees_everything(no_leaked_tasks: Any) -> None:
    async with cluster(
        POOL, {"a": {}, "b": {}}, sims={"a": {"tokens_per_second": 20.0, "tokens": 200}}
    ) as c:
        stream = c.router.stream({**chat("hi"), "model": "pool"})
        await stream.open()
        assert c.router.deployments["a"].in_flight == 1
        await stream.aclose()
        assert c.router.deployments["a"].in_flight == 0
        assert [chunk async for chunk in stream] == []
        with pytest.raises(UsageError):
            await _open_closed(c)
    await no_leaked_tasks()


async def _open_closed(c: Any) -> None:
    stream = c.router.stream({**chat("hi"), "model": "pool"})
    await stream.aclose()
    await stream.open()


async def test_degraded_stream_and_route_unavailable() -> None:
    routing = {**POOL, "degraded": {"text": "Sorry, try later."}}
    sims = {"a": {"fail_all": True}, "b": {"fail_all": True}}
    async with cluster(routing, {"a": {}, "b": {}}, sims=sims) as c:
        async with c.router.stream({**chat("hi"), "model": "pool"}) as stream:
            decision = await stream.open()
            chunks = [chunk async for chunk in stream]
        assert decision.degraded and text_of(chunks) == "Sorry, try later."
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    async with cluster(POOL, {"a": {}, "b": {}}, sims=sims) as c:
        with pytest.raises(RouteUnavailable):
            await c.router.stream({**chat("hi"), "model": "pool"}).open()


async def test_stream_cascade_replays_a_good_light_answer_or_streams_strong() -> None:
    routing = {
        "tiers": [
            {"name": "light", "models": ["l1"], "when": {"score_below": 0.4}},
            {"name": "strong", "models": ["s1"]},
        ],
        "cascade": [{"from": "light", "to": "strong", "checks": ["length"]}],
    }
    async with cluster(routing, {"l1": {}, "s1": {}}) as c:
        async with c.router.stream(chat("hi")) as stream:
            decision = await stream.open()
            chunks = [chunk async for chunk in stream]
        assert decision.tier == "light" and decision.escalated is None
        plain, _ = await c.router.chat({**chat("hi"), "model": "l1"})
        assert text_of(chunks) == plain["choices"][0]["message"]["content"]
        assert c.requests("s1") == 0

        async with c.router.stream(chat("hi", max_tokens=2)) as stream:
            decision = await stream.open()
            chunks = [chunk async for chunk in stream]
        assert decision.tier == "strong" and decision.escalated == "length"
        assert c.sims["s1"].stats["streams"] == 1 and text_of(chunks)
        assert (
            c.router.deployments["l1"].in_flight == 0 and c.router.deployments["s1"].in_flight == 0
        )
