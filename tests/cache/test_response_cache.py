"""ResponseCache with blocking requests: scope isolation, tiers, TTLs and per-request controls."""

from __future__ import annotations

from typing import Any

import pytest

from cache.helpers import Clock, Upstream, ask, completion
from tidegate.cache import ResponseCache
from tidegate.config.cache import CacheConfig, SemanticCacheConfig
from tidegate.context import RequestContext
from tidegate.errors import ConfigError, RequestError, UpstreamError, UsageError


def ctx(tenant: str | None = "acme", **headers: str) -> RequestContext:
    return RequestContext(tenant=tenant, headers={k.replace("_", "-"): v for k, v in headers.items()})


async def answer(cache: ResponseCache, body: dict[str, Any], up: Upstream, context: RequestContext | None = None) -> tuple[str, dict[str, str]]:
    context = context if context is not None else ctx()
    response = await cache.complete(body, context, up.complete)
    return response["choices"][0]["message"]["content"], dict(context.response_headers)


def hits(cache: ResponseCache, kind: str) -> float:
    value = cache.metrics.registry.get_sample_value("tidegate_cache_hits_total", {"kind": kind})
    return value or 0.0


async def test_miss_then_exact_hit_with_headers(make_cache: Any, clock: Clock) -> None:
    cache, up = await make_cache(), Upstream()
    text, headers = await answer(cache, ask("How do I get a refund?"), up)
    assert (text, headers["cache-status"]) == ("answer 1", "tidegate; fwd=miss; stored")
    clock.advance(30)
    text, headers = await answer(cache, ask("How do I get a refund?"), up)
    assert text == "answer 1" and up.calls == 1
    assert headers["cache-status"] == "tidegate; hit; ttl=570; detail=exact"
    assert headers["age"] == "30"
    assert hits(cache, "exact") == 1


async def test_tenants_never_share_answers(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    assert (await answer(cache, ask("How do I get a refund?"), up, ctx("acme")))[0] == "answer 1"
    assert (await answer(cache, ask("How do I get a refund?"), up, ctx("globex")))[0] == "answer 2"
    assert (await answer(cache, ask("how do I get a refund please"), up, ctx("globex")))[0] == "answer 2"
    assert (await answer(cache, ask("How do I get a refund?"), up, ctx(None)))[0] == "answer 3"
    assert (await answer(cache, ask("How do I get a refund?"), up, ctx("acme")))[0] == "answer 1"
    assert up.calls == 3


async def test_tenant_header_scopes_requests_without_a_key(make_cache: Any) -> None:
    cache, up = await make_cache({"tenant_header": "X-Org"}), Upstream()
    assert (await answer(cache, ask("Hi"), up, ctx(None, x_org="a")))[0] == "answer 1"
    assert (await answer(cache, ask("Hi"), up, ctx(None, x_org="b")))[0] == "answer 2"
    assert (await answer(cache, ask("Hi"), up, ctx(None, x_org="a")))[0] == "answer 1"


@pytest.mark.parametrize(
    "other",
    [
        ask("How do I get a refund?", system="You are the assistant of another shop."),
        ask("How do I get a refund?", temperature=0.1),
        ask("How do I get a refund?", max_tokens=5),
        ask("How do I get a refund?", model="strong"),
        ask("How do I get a refund?", tools=[{"type": "function", "function": {"name": "refund"}}]),
    ],
)
async def test_other_system_prompt_params_or_route_miss(make_cache: Any, other: dict[str, Any]) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("How do I get a refund?"), up)
    text, headers = await answer(cache, other, up)
    assert text == "answer 2" and headers["cache-status"].startswith("tidegate; fwd=miss")


async def test_ttl_expiry_on_the_injected_clock(make_cache: Any, clock: Clock) -> None:
    cache = await make_cache({"exact": {"ttl": "10m"}, "semantic": {"ttl": "1h"}, "routes": {"fast": {"ttl": "5s"}}})
    up = Upstream()
    await answer(cache, ask("How do I get a refund?"), up)
    clock.advance(599)
    assert (await answer(cache, ask("How do I get a refund?"), up))[0] == "answer 1"
    clock.advance(1)  # the exact entry expired; the normalized entry lives for the semantic TTL
    text, headers = await answer(cache, ask("How do I get a refund?"), up)
    assert text == "answer 1" and headers["cache-status"].endswith("detail=normalized")
    clock.advance(3000)
    assert (await answer(cache, ask("How do I get a refund?"), up))[0] == "answer 2"
    await answer(cache, ask("Hi", model="fast"), up)
    clock.advance(5)
    assert (await answer(cache, ask("Hi", model="fast"), up))[0] == "answer 4"
    clock.advance(7200)
    assert await cache.sweep() > 0
    stats = cache.stats()
    assert stats["exact"]["entries"] == 0 and stats["semantic"]["entries"] == 0
    assert stats["semantic"]["partitions"] == 0 and stats["exact"]["bytes"] == 0


async def test_normalized_and_semantic_tiers(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("How do I get a refund?"), up)
    text, headers = await answer(cache, ask("  how do I get a REFUND "), up)
    assert text == "answer 1" and headers["cache-status"].endswith("detail=normalized")
    text, headers = await answer(cache, ask("How do I get a refund please?"), up)
    assert text == "answer 1" and headers["cache-status"].endswith("detail=semantic")
    assert float(headers["x-tidegate-cache-similarity"]) >= cache.threshold("m")
    text, headers = await answer(cache, ask("How do I get a refund please?"), up)
    assert headers["cache-status"].endswith("detail=exact")  # promoted after the semantic hit
    assert up.calls == 1
    assert hits(cache, "semantic") == 1 and hits(cache, "normalized") == 1


async def test_traps_are_refused_and_counted(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("Can I return an item after 30 days?"), up)
    # Another number: stored apart (its signature differs), so never even a candidate.
    assert (await answer(cache, ask("Can I return an item after 60 days?"), up))[0] == "answer 2"
    await answer(cache, ask("How do I cancel my order?"), up)
    assert (await answer(cache, ask("How do I cancel my subscription?"), up))[0] == "answer 4"
    registry = cache.metrics.registry
    assert registry.get_sample_value("tidegate_cache_guard_refusals_total", {"reason": "object"}) == 1
    assert registry.get_sample_value("tidegate_cache_guard_refusals_total", {"reason": "number"}) is None


async def test_questions_about_other_numbers_do_not_crowd_out_the_paraphrase(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    question, paraphrase = "What is the price of plan 7?", "What's the cost of plan 7?"
    others = [f"What is the price of plan {n}?" for n in range(8, 60)]
    vectors = await cache.embedder.embed([question, paraphrase, *others])
    nearer = sum(float(vectors[0] @ v) > float(vectors[0] @ vectors[1]) for v in vectors[2:])
    assert nearer >= 4  # searched together, these would fill the nearest few and be refused
    await answer(cache, ask(paraphrase), up)
    for other in others:
        await answer(cache, ask(other), up)
    text, headers = await answer(cache, ask(question), up)
    assert text == "answer 1" and headers["cache-status"].endswith("detail=semantic"), headers


async def test_without_the_guard_every_question_shares_one_index(make_cache: Any) -> None:
    cache, up = await make_cache({"semantic": {"guard": False, "threshold": 0.5}}), Upstream()
    await answer(cache, ask("Can I return an item after 30 days?"), up)
    text, headers = await answer(cache, ask("Can I return an item after 60 days?"), up)
    assert text == "answer 1" and headers["cache-status"].endswith("detail=semantic")  # its own choice


async def test_follow_ups_only_match_within_their_conversation(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    basic = [{"role": "user", "content": "Tell me about the Basic plan."}, {"role": "assistant", "content": "$10."}]
    pro = [{"role": "user", "content": "Tell me about the Pro plan."}, {"role": "assistant", "content": "$30."}]
    follow = {"role": "user", "content": "How do I upgrade to it?"}
    await answer(cache, {"model": "m", "messages": [*basic, follow]}, up)
    assert (await answer(cache, {"model": "m", "messages": [*pro, follow]}, up))[0] == "answer 2"
    again = {"role": "user", "content": "how do I upgrade to it"}
    assert (await answer(cache, {"model": "m", "messages": [*basic, again]}, up))[0] == "answer 1"


async def test_cache_control_no_cache_refreshes(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("Hi"), up)
    text, headers = await answer(cache, ask("Hi"), up, ctx(cache_control="no-cache"))
    assert text == "answer 2" and headers["cache-status"] == "tidegate; fwd=request; stored"
    assert (await answer(cache, ask("Hi"), up))[0] == "answer 2"


async def test_cache_control_no_store_bypasses(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("Hi"), up)
    text, headers = await answer(cache, ask("Hi"), up, ctx(cache_control="no-store"))
    assert text == "answer 2" and headers["cache-status"] == "tidegate; fwd=request; detail=no-store"
    await answer(cache, ask("Fresh question"), up, ctx(cache_control="no-store"))
    assert (await answer(cache, ask("Fresh question"), up))[0] == "answer 4"


async def test_cache_control_max_age(make_cache: Any, clock: Clock) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("Hi"), up)
    clock.advance(100)
    assert (await answer(cache, ask("Hi"), up, ctx(cache_control="max-age=200")))[0] == "answer 1"
    text, headers = await answer(cache, ask("Hi"), up, ctx(cache_control="max-age=50"))
    assert text == "answer 2" and headers["cache-status"] == "tidegate; fwd=stale; stored"


async def test_only_if_cached(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    with pytest.raises(RequestError) as info:
        await answer(cache, ask("Hi"), up, ctx(cache_control="only-if-cached"))
    assert (info.value.status, info.value.code, up.calls) == (504, "not_cached", 0)
    await answer(cache, ask("Hi"), up)
    assert (await answer(cache, ask("Hi"), up, ctx(cache_control="only-if-cached")))[0] == "answer 1"


async def test_high_temperature_and_disabled_routes_bypass(make_cache: Any) -> None:
    cache = await make_cache({"semantic": {"max_temperature": 0.7}, "routes": {"raw": {"enabled": False}}})
    up = Upstream()
    for body in (ask("Hi", temperature=0.9), ask("Hi", model="raw")):
        await answer(cache, body, up)
        _text, headers = await answer(cache, body, up)
        assert headers["cache-status"].startswith("tidegate; fwd=bypass")
    assert up.calls == 4
    await answer(cache, ask("Hi", temperature=0.5), up)
    assert (await answer(cache, ask("Hi", temperature=0.5), up))[0] == "answer 5"
    opted = await make_cache({"semantic": {"max_temperature": 0.7, "cache_high_temperature": True}})
    await answer(opted, ask("Hi", temperature=1.5), up)
    assert (await answer(opted, ask("Hi", temperature=1.5), up))[0] == "answer 6"


async def test_errors_and_unfinished_answers_are_not_stored(make_cache: Any) -> None:
    cache, up = await make_cache(), Upstream()
    up.fail = UpstreamError("boom", upstream_status=500)
    with pytest.raises(UpstreamError):
        await answer(cache, ask("Hi"), up)
    up.fail = None
    assert (await answer(cache, ask("Hi"), up))[0] == "answer 2"

    async def filtered() -> dict[str, Any]:
        return completion("[filtered]", finish="content_filter")

    context = ctx()
    await cache.complete(ask("Other"), context, filtered)
    assert dict(context.response_headers)["cache-status"] == "tidegate; fwd=miss"
    assert (await answer(cache, ask("Other"), up))[0] == "answer 3"


async def test_oversized_answers_are_served_not_stored(make_cache: Any) -> None:
    cache = await make_cache({"max_entry_size": 1024})

    async def big() -> dict[str, Any]:
        return completion("x" * 5000)

    for _ in range(2):
        response = await cache.complete(ask("Big?"), ctx(), big)
        assert len(response["choices"][0]["message"]["content"]) == 5000
    await cache.settle()  # the last answer is recorded (here: refused) after it went out
    skipped = cache.metrics.registry.get_sample_value("tidegate_cache_store_skipped_total", {"reason": "too_large"})
    assert skipped == 2


async def test_lifecycle_misuse(pool: Any, embedder: Any, clock: Clock) -> None:
    cache = ResponseCache(CacheConfig(), embedders={"default": embedder}, pool=pool, clock=clock)
    with pytest.raises(UsageError):
        await cache.complete(ask("Hi"), ctx(), Upstream().complete)
    await cache.start()
    with pytest.raises(UsageError):
        await cache.start()
    await cache.close()
    await cache.close()  # idempotent
    with pytest.raises(UsageError):
        await cache.complete(ask("Hi"), ctx(), Upstream().complete)
    with pytest.raises(ConfigError, match=r"got `nope` - at `\$\.cache\.semantic\.embedder`"):
        ResponseCache(CacheConfig(semantic=SemanticCacheConfig(embedder="nope")), embedders={"default": embedder})


async def test_works_without_an_embedder_and_without_a_context(pool: Any, clock: Clock) -> None:
    async with ResponseCache(CacheConfig(), pool=pool, clock=clock) as cache:
        up = Upstream()
        assert (await cache.complete(ask("Hi there"), None, up.complete))["choices"][0]["message"]["content"] == "answer 1"
        assert (await cache.complete(ask("hi there!"), None, up.complete))["choices"][0]["message"]["content"] == "answer 1"
        assert (await cache.complete(ask("Hi there friend"), None, up.complete))["choices"][0]["message"]["content"] == "answer 2"
        assert cache.stats()["semantic"]["embedder"] is None


async def test_a_failing_embedder_degrades_to_exact_and_normalized(make_cache: Any, embedder: Any) -> None:
    cache, up = await make_cache(), Upstream()
    await answer(cache, ask("How do I get a refund?"), up)
    await embedder.close()  # from now on every embed() raises
    assert (await answer(cache, ask("how do i get a refund"), up))[0] == "answer 1"
    assert (await answer(cache, ask("How do I get a refund please?"), up))[0] == "answer 2"
    assert (await answer(cache, ask("How do I get a refund please?"), up))[0] == "answer 2"
    await cache.settle()  # the stored miss tried to embed its question again, after answering
    errors = cache.metrics.registry.get_sample_value("tidegate_cache_errors_total", {"stage": "embed"})
    assert errors is not None and errors >= 2
