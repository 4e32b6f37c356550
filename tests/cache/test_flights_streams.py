"""Single-flight and streams: one upstream call per identical burst, recorded and replayed streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cache.helpers import Upstream, ask, decided, text_of, until
from tidegate.cache import ResponseCache
from tidegate.context import RequestContext
from tidegate.errors import UpstreamError


def ctx(tenant: str = "acme") -> RequestContext:
    return RequestContext(tenant=tenant)


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def streaming(question: str, **params: Any) -> dict[str, Any]:
    return ask(question, stream=True, **params)


async def test_identical_concurrent_misses_share_one_call(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    contexts = [ctx() for _ in range(10)]
    tasks = [asyncio.create_task(cache.complete(ask("Hi"), c, up.complete)) for c in contexts]
    await until(lambda: all(decided(c) for c in contexts))
    up.gate.set()
    answers = await asyncio.gather(*tasks)
    assert up.calls == 1
    assert {a["choices"][0]["message"]["content"] for a in answers} == {"answer 1"}
    statuses = sorted(dict(c.response_headers)["cache-status"] for c in contexts)
    assert statuses == ["tidegate; fwd=miss; collapsed"] * 9 + ["tidegate; fwd=miss; stored"]
    collapsed = cache.metrics.registry.get_sample_value("tidegate_cache_collapsed_total")
    assert collapsed == 9
    assert (await cache.complete(ask("Hi"), ctx(), up.complete))["choices"][0]["message"]["content"] == "answer 1"


async def test_a_failure_releases_every_waiter_with_the_error(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    up.fail = UpstreamError("upstream said 503", upstream_status=503)
    contexts = [ctx() for _ in range(5)]
    tasks = [asyncio.create_task(cache.complete(ask("Hi"), c, up.complete)) for c in contexts]
    await until(lambda: all(decided(c) for c in contexts))
    up.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert up.calls == 1
    assert all(isinstance(r, UpstreamError) and "503" in str(r) for r in results)
    up.fail = None
    assert (await cache.complete(ask("Hi"), ctx(), up.complete))["choices"][0]["message"]["content"] == "answer 2"


async def test_the_first_client_leaving_does_not_fail_the_others(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    c1, c2 = ctx(), ctx()
    first = asyncio.create_task(cache.complete(ask("Hi"), c1, up.complete))
    await until(lambda: decided(c1) and up.calls == 1)
    second = asyncio.create_task(cache.complete(ask("Hi"), c2, up.complete))
    await until(lambda: decided(c2))
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert up.cancelled == 0
    up.gate.set()
    assert (await second)["choices"][0]["message"]["content"] == "answer 1"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_when_every_client_leaves_the_call_is_cancelled(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    contexts = [ctx() for _ in range(3)]
    tasks = [asyncio.create_task(cache.complete(ask("Hi"), c, up.complete)) for c in contexts]
    await until(lambda: all(decided(c) for c in contexts) and up.calls == 1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await until(lambda: up.cancelled == 1)
    assert cache.stats()["in_flight"] == 0


async def test_stream_miss_is_recorded_and_replayed_with_the_same_text(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    c1 = ctx()
    first = await collect(cache.stream(streaming("Stream me"), c1, up.stream(words=5)))
    assert dict(c1.response_headers)["cache-status"] == "tidegate; fwd=miss"
    c2 = ctx()
    replay = await collect(cache.stream(streaming("Stream me"), c2, up.stream()))
    assert dict(c2.response_headers)["cache-status"].endswith("detail=exact")
    assert up.calls == 1
    assert text_of(replay) == text_of(first) == "w1.0 w1.1 w1.2 w1.3 w1.4"
    assert replay[-1]["choices"][0]["finish_reason"] == "stop"
    blocking = await cache.complete(ask("Stream me"), ctx(), up.complete)  # same answer, other shape
    assert blocking["choices"][0]["message"]["content"] == text_of(first)
    again = await collect(cache.stream(streaming("stream me!"), ctx(), up.stream()))
    assert text_of(again) == text_of(first) and up.calls == 1


async def test_blocking_answers_replay_as_streams(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await cache.complete(ask("Hi"), ctx(), up.complete)
    with_usage = await collect(cache.stream(streaming("Hi", stream_options={"include_usage": True}), ctx(), up.stream()))
    without = await collect(cache.stream(streaming("Hi"), ctx(), up.stream()))
    assert text_of(with_usage) == text_of(without) == "answer 1"
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["total_tokens"] == 5
    assert all(c["choices"] for c in without)
    assert up.calls == 1


async def test_partial_and_failed_streams_are_never_stored(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await collect(cache.stream(streaming("Cut"), ctx(), up.stream(finish=None)))
    await collect(cache.stream(streaming("Cut"), ctx(), up.stream()))
    assert up.calls == 2
    up.fail = UpstreamError("reset mid-stream")
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError):
        async for chunk in cache.stream(streaming("Broken"), ctx(), up.stream(fail_after=2)):
            received.append(chunk)
    assert len(received) == 2
    up.fail = None
    assert text_of(await collect(cache.stream(streaming("Broken"), ctx(), up.stream()))) == "w4.0 w4.1 w4.2"
    skipped = cache.metrics.registry.get_sample_value("tidegate_cache_store_skipped_total", {"reason": "partial"})
    assert skipped == 1


async def test_concurrent_streams_fan_out_one_upstream_stream(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    contexts = [ctx() for _ in range(5)]
    tasks = [asyncio.create_task(collect(cache.stream(streaming("Hi"), c, up.stream(words=4)))) for c in contexts]
    await until(lambda: all(decided(c) for c in contexts))
    up.gate.set()
    results = await asyncio.gather(*tasks)
    assert up.calls == 1
    assert {text_of(r) for r in results} == {"w1.0 w1.1 w1.2 w1.3"}
    statuses = sorted(dict(c.response_headers)["cache-status"] for c in contexts)
    assert statuses == ["tidegate; fwd=miss"] + ["tidegate; fwd=miss; collapsed"] * 4


async def test_a_late_joiner_gets_the_whole_stream(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    first = cache.stream(streaming("Hi"), ctx(), up.stream(words=6))
    head = [await anext(first), await anext(first), await anext(first)]
    late = await collect(cache.stream(streaming("Hi"), ctx(), up.stream()))
    rest = await collect(first)
    assert up.calls == 1
    assert text_of(late) == text_of(head + rest) == "w1.0 w1.1 w1.2 w1.3 w1.4 w1.5"


async def test_a_stream_error_reaches_every_follower(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.gate = asyncio.Event()
    up.fail = UpstreamError("reset")
    contexts = [ctx() for _ in range(3)]
    tasks = [asyncio.create_task(collect(cache.stream(streaming("Hi"), c, up.stream(fail_after=3)))) for c in contexts]
    await until(lambda: all(decided(c) for c in contexts))
    up.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert up.calls == 1 and all(isinstance(r, UpstreamError) for r in results)


async def test_abandoned_stream_cancels_upstream(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    stream = cache.stream(streaming("Long"), ctx(), up.stream(words=50))
    await anext(stream)
    await stream.aclose()  # the client hung up
    await until(lambda: up.cancelled == 1 and cache.stats()["in_flight"] == 0)
    assert text_of(await collect(cache.stream(streaming("Long"), ctx(), up.stream(words=2)))) == "w2.0 w2.1"


async def test_no_store_streams_pass_through(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    context = RequestContext(tenant="acme", headers={"cache-control": "no-store"})
    await collect(cache.stream(streaming("Hi"), context, up.stream()))
    assert dict(context.response_headers)["cache-status"] == "tidegate; fwd=request; detail=no-store"
    await collect(cache.stream(streaming("Hi"), ctx(), up.stream()))
    assert up.calls == 2


async def test_close_ends_shared_calls_and_leaves_no_tasks(make_cache: Any, no_leaked_tasks: Any) -> None:
    cache: ResponseCache = await make_cache()
    up = Upstream()
    up.gate = asyncio.Event()
    c1, c2 = ctx(), ctx()
    waiting = asyncio.create_task(cache.complete(ask("Hi"), c1, up.complete))
    streaming_task = asyncio.create_task(collect(cache.stream(streaming("Yo"), c2, up.stream())))
    await until(lambda: decided(c1) and decided(c2) and up.calls == 2)
    await cache.close()
    results = await asyncio.gather(waiting, streaming_task, return_exceptions=True)
    assert all(type(r).__name__ == "ShuttingDown" for r in results)
    await no_leaked_tasks()


async def test_deferred_store_work_runs_after_every_waiter_has_its_answer() -> None:
    from tidegate.cache.flight import Flights

    flights, order = Flights(), []
    gate = asyncio.Event()

    async def produce() -> dict[str, Any]:
        await gate.wait()
        return {"answer": 1}

    def store(response: dict[str, Any], at: float) -> Any:
        order.append("recorded")

        async def later() -> None:
            order.append("deferred")

        return later

    async def waiter(name: str) -> None:
        await flights.call(b"k", produce, store)
        order.append(name)

    tasks = [asyncio.create_task(waiter(f"waiter {i}")) for i in range(3)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    await flights.settle()
    assert order == ["waiter 0", "waiter 1", "waiter 2", "recorded", "deferred"]
    await flights.aclose()


async def test_a_lookup_right_after_an_answer_records_it_first() -> None:
    """The answer is recorded after its clients have it; one who asks again at once (before
    the flight's task has run) must still find it stored, and it is stored once."""
    from tidegate.cache.flight import Flights

    flights, order = Flights(), []

    async def produce() -> dict[str, Any]:
        return {"answer": 1}

    def store(response: dict[str, Any], at: float) -> Any:
        order.append("recorded")
        return None

    await flights.call(b"k", produce, store)
    order.append("answered")
    flights.record()  # what a lookup does first
    order.append("looked up")
    await flights.settle()
    assert order == ["answered", "recorded", "looked up"]
    await flights.aclose()


async def test_a_stored_miss_is_found_by_meaning_at_once(make_cache: Any) -> None:
    # Nothing to compare the first question with, so it is embedded after its answer; a lookup
    # that comes before that embeds it along with its own, so a paraphrase asked right after the
    # first answer is already a semantic hit.
    cache, up = await make_cache(), Upstream()
    await cache.complete(ask("How do I get a refund for my order?"), ctx(), up.complete)
    c = ctx()
    await cache.complete(ask("how do i get a refund for my order please"), c, up.complete)
    assert up.calls == 1 and dict(c.response_headers)["cache-status"].endswith("detail=semantic")


async def test_a_question_with_nothing_to_compare_is_embedded_after_its_answer(
    make_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, up = await make_cache(), Upstream()
    embedder = cache.embedder
    calls: list[list[str]] = []
    real = embedder.embed

    async def counting(texts: list[str], **kw: Any) -> Any:
        calls.append(list(texts))
        return await real(texts, **kw)

    monkeypatch.setattr(embedder, "embed", counting)

    async def produce() -> dict[str, Any]:
        assert calls == [], "embedded before the upstream call"
        return await up.complete()

    await cache.complete(ask("Where is order 1042?"), ctx(), produce)  # its own signature: empty
    await cache.settle()
    assert calls == [["Where is order 1042?"]]  # once, after the answer
    c = ctx()
    await cache.complete(ask("where's order 1042"), c, up.complete)
    assert dict(c.response_headers)["cache-status"].endswith("detail=semantic")
    assert calls[-1] == ["where's order 1042"]


async def test_a_failed_late_embedding_leaves_the_question_findable_by_text(
    make_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, up = await make_cache(), Upstream()

    async def failing(texts: list[str], **kw: Any) -> Any:
        raise RuntimeError("embedder down")

    monkeypatch.setattr(cache.embedder, "embed", failing)
    await cache.complete(ask("How do I get a refund?"), ctx(), up.complete)
    await cache.settle()
    assert cache.tiers.semantic.unindexed(next(iter(cache.tiers.semantic._partitions))) == []
    c = ctx()
    await cache.complete(ask("how do I get a REFUND"), c, up.complete)
    assert dict(c.response_headers)["cache-status"].endswith("detail=normalized") and up.calls == 1
