from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tidegate.context import RequestContext
from tidegate.errors import NotFoundError, RouteUnavailable, UpstreamError
from tidegate.routing.degraded import MODEL_NAME

from .conftest import HARD, chat, cluster

TIERS = {
    "tiers": [
        {"name": "light", "models": ["l1"], "when": {"score_below": 0.4}},
        {"name": "strong", "models": ["s1"]},
    ],
    "retry": {"backoff": {"min": "10ms", "max": "50ms"}},
}
PRICED = {
    "l1": {"input_price": 0.1, "output_price": 0.4},
    "s1": {"input_price": 2.5, "output_price": 10.0},
}


async def test_auto_routes_by_score_and_prices_the_answer() -> None:
    async with cluster(TIERS, PRICED) as c:
        response, decision = await c.router.chat(chat("hi there!"))
        assert decision.tier == "light" and decision.model == "l1"
        assert decision.score is not None and decision.score < 0.4
        usage = response["usage"]
        expected = (usage["prompt_tokens"] * 0.1 + usage["completion_tokens"] * 0.4) / 1e6
        assert decision.cost == pytest.approx(expected)
        assert decision.attempts == 1 and not decision.fallback_used and not decision.degraded

        response, decision = await c.router.chat(chat(HARD))
        assert decision.tier == "strong" and decision.model == "s1"
        assert decision.score is not None and decision.score >= 0.4
        assert decision.signals and decision.signals[0][0] in {"reasoning", "math", "length"}
        headers = dict(decision.headers())
        assert headers["x-tidegate-tier"] == "strong"
        assert headers["x-tidegate-model"] == "s1"
        assert float(headers["x-tidegate-cost"]) == pytest.approx(decision.cost, rel=1e-3)
        assert "score=" in headers["x-tidegate-route-debug"]
        assert "signals=" in headers["x-tidegate-route-debug"]
        assert c.requests("l1") == 1 and c.requests("s1") == 1
        ctx_cost = c.metric(
            "tidegate_route_cost_total", {"tenant": "-", "tier": "strong", "model": "s1"}
        )
        assert ctx_cost == pytest.approx(decision.cost)


async def test_overrides_named_tiers_and_models() -> None:
    async with cluster(TIERS, PRICED) as c:
        _, decision = await c.router.chat(chat(HARD, tier="light"))
        assert decision.tier == "light" and decision.override == "body" and decision.score is None
        ctx = RequestContext(headers={"x-tidegate-tier": "strong"}, tenant="acme")
        _, decision = await c.router.chat(chat("hi"), ctx)
        assert decision.tier == "strong" and decision.override == "header"
        assert (
            c.metric(
                "tidegate_route_cost_total", {"tenant": "acme", "tier": "strong", "model": "s1"}
            )
            > 0
        )
        _, decision = await c.router.chat({**chat("hi"), "model": "strong"})
        assert decision.tier == "strong" and decision.override is None
        _, decision = await c.router.chat({**chat("hi"), "model": "s1"})
        assert decision.tier == "s1" and decision.model == "s1"
        with pytest.raises(NotFoundError) as info:
            await c.router.chat({**chat("hi"), "model": "gpt-9"})
        assert info.value.status == 404 and "auto" in info.value.message
        with pytest.raises(NotFoundError):
            await c.router.chat(chat("hi", tier="platinum"))


async def test_fails_over_inside_a_tier_and_trips_the_breaker() -> None:
    routing = {
        "tiers": [{"name": "pool", "models": ["a", "b"], "balance": "round-robin"}],
        "breaker": {"failure_ratio": 0.5, "min_volume": 3, "cooldown": "60s"},
        "retry": {"backoff": {"min": "10ms", "max": "20ms"}},
    }
    async with cluster(routing, {"a": {}, "b": {}}, sims={"a": {"fail_all": True}}) as c:
        results = [await c.router.chat({**chat("hi"), "model": "pool"}) for _ in range(10)]
        assert all(d.model == "b" for _, d in results)
        failed_over = [d for _, d in results if d.attempts == 2]
        assert failed_over and failed_over[0].trail == ("a:500", "b:ok")
        assert "trail=a:500>b:ok" in failed_over[0].debug()
        assert c.router.deployments["a"].breaker.state == "open"
        assert c.requests("a") == 3  # min_volume calls, then the breaker kept traffic away
        assert c.metric("tidegate_route_breaker_state", {"model": "a"}) == 2
        assert c.metric("tidegate_route_attempts_total", {"model": "a", "outcome": "500"}) == 3


async def test_client_errors_are_not_retried_or_failed_over() -> None:
    routing = {"tiers": [{"name": "pool", "models": ["a", "b"]}]}
    async with cluster(routing, {"a": {}, "b": {}}) as c:
        with pytest.raises(UpstreamError) as info:
            await c.router.chat({"model": "pool", "messages": []})
        assert info.value.upstream_status == 400
        assert c.requests("a") + c.requests("b") == 1
        for name in ("a", "b"):
            deployment = c.router.deployments[name]
            assert deployment.breaker.counts() == (0, 0) and deployment.in_flight == 0


async def test_fallback_chain_then_degraded_answer() -> None:
    routing = {
        **TIERS,
        "fallbacks": {"strong": ["light"]},
        "degraded": {"text": "We are having trouble, please retry soon."},
    }
    async with cluster(routing, PRICED, sims={"s1": {"fail_all": True, "fail_kind": "503"}}) as c:
        _, decision = await c.router.chat(chat(HARD))
        assert (
            decision.requested == "strong" and decision.tier == "light" and decision.fallback_used
        )
        assert decision.trail[-1] == "l1:ok" and decision.attempts == 4  # 3 tries on s1, then l1

        c.sims["l1"].update(fail_all=True)
        response, decision = await c.router.chat(chat(HARD))
        assert decision.degraded and decision.tier is None and decision.model is None
        assert (
            response["choices"][0]["message"]["content"]
            == "We are having trouble, please retry soon."
        )
        assert response["model"] == MODEL_NAME
        assert dict(decision.headers())["x-tidegate-tier"] == "degraded"
        assert c.metric("tidegate_route_degraded_total") == 1


async def test_route_unavailable_without_degraded_text() -> None:
    async with cluster(TIERS, PRICED, sims={"l1": {"fail_all": True}}) as c:
        with pytest.raises(RouteUnavailable) as info:
            await c.router.chat(chat("hi"))
        assert info.value.status == 503
        assert "l1:500" in info.value.message
        assert isinstance(info.value.__cause__, UpstreamError)


async def test_retry_after_is_honoured_on_a_lone_deployment() -> None:
    routing = {
        "tiers": [{"name": "only", "models": ["a"]}],
        "retry": {"backoff": {"min": "10ms", "max": "1s"}},
    }
    sims = {"a": {"fail_all": True, "fail_kind": "429", "retry_after": 0.4}}
    async with cluster(routing, {"a": {}}, sims=sims) as c:

        async def heal() -> None:
            while c.requests("a") == 0:
                await asyncio.sleep(0.005)
            c.sims["a"].update(fail_all=False)

        healer = asyncio.create_task(heal())
        started = time.perf_counter()
        _, decision = await c.router.chat({**chat("hi"), "model": "only"})
        elapsed = time.perf_counter() - started
        await healer
        assert decision.trail == ("a:429", "a:ok")
        assert elapsed >= 0.4  # waited out the Retry-After instead of hammering
        assert c.requests("a") == 2
        assert c.router.deployments["a"].breaker.counts() == (1, 0)  # a 429 is no breaker failure


async def test_retry_after_moves_traffic_to_a_sibling_meanwhile() -> None:
    routing = {"tiers": [{"name": "pool", "models": ["a", "b"], "balance": "round-robin"}]}
    sims = {"a": {"fail_all": True, "fail_kind": "429", "retry_after": 30}}
    async with cluster(routing, {"a": {}, "b": {}}, sims=sims) as c:
        for _ in range(6):
            _, decision = await c.router.chat({**chat("hi"), "model": "pool"})
            assert decision.model == "b"
        assert c.requests("a") == 1  # told to wait 30 s: never asked again meanwhile


async def test_attempt_timeout_fails_over() -> None:
    routing = {
        "tiers": [{"name": "pool", "models": ["slow", "fast"], "balance": "round-robin"}],
        "retry": {"attempt_timeout": "150ms"},
    }
    async with cluster(routing, {"slow": {}, "fast": {}}, sims={"slow": {"ttft": 5.0}}) as c:
        started = time.perf_counter()
        _, decision = await c.router.chat({**chat("hi"), "model": "pool"})
        assert decision.model == "fast" and decision.trail == ("slow:timeout", "fast:ok")
        assert time.perf_counter() - started < 2.0
        assert c.router.deployments["slow"].in_flight == 0


async def test_rpm_and_concurrency_caps_spread_load() -> None:
    routing = {"tiers": [{"name": "pool", "models": ["a", "b"], "balance": "least-in-flight"}]}
    async with cluster(
        routing, {"a": {"rpm": 2}, "b": {"max_concurrency": 2}}, sims={"b": {"ttft": 0.2}}
    ) as c:
        results = await asyncio.gather(
            *[c.router.chat({**chat(f"q{i}"), "model": "pool"}) for i in range(5)]
        )
        models = sorted(d.model or "" for _, d in results)
        # a's rpm holds; the fifth call queues at b (its pool is the cap) instead of failing
        assert models == ["a", "a", "b", "b", "b"]
        assert all(d.attempts == 1 for _, d in results)
        assert c.requests("a") == 2
        assert c.router.deployments["b"].in_flight == 0
        assert not c.router.deployments["a"].available()  # rpm spent for this minute


async def test_overall_deadline_bounds_the_route() -> None:
    routing = {
        "tiers": [{"name": "only", "models": ["a"]}],
        "retry": {"deadline": "300ms", "attempts": 10, "backoff": {"min": "50ms", "max": "100ms"}},
        "degraded": {"text": "later"},
    }
    async with cluster(routing, {"a": {}}, sims={"a": {"ttft": 0.2, "fail_all": True}}) as c:
        started = time.perf_counter()
        _, decision = await c.router.chat({**chat("hi"), "model": "only"})
        assert decision.degraded
        assert time.perf_counter() - started < 0.6
        assert decision.attempts < 10


async def test_cascade_escalates_when_the_light_answer_fails_a_check() -> None:
    routing = {**TIERS, "cascade": [{"from": "light", "to": "strong"}]}
    models = {"l1": {**PRICED["l1"], "headers": {"X-Sim-Tokens": "0"}}, "s1": PRICED["s1"]}
    async with cluster(routing, models) as c:
        response, decision = await c.router.chat(chat("hi"))
        assert (
            decision.escalated == "empty" and decision.tier == "strong" and decision.model == "s1"
        )
        assert decision.requested == "light" and not decision.fallback_used
        assert response["choices"][0]["message"]["content"]
        assert (
            decision.cost > (response["usage"]["prompt_tokens"] * 2.5) / 1e6
        )  # light call counted too
        assert (
            c.metric(
                "tidegate_route_escalations_total",
                {"source": "light", "target": "strong", "check": "empty"},
            )
            == 1
        )
        _, decision = await c.router.chat(chat("hi", max_tokens=3))
        assert decision.escalated == "empty"


async def test_cascade_keeps_a_good_light_answer_and_checks_length() -> None:
    routing = {**TIERS, "cascade": [{"from": "light", "to": "strong", "checks": ["length"]}]}
    async with cluster(routing, PRICED) as c:
        _, decision = await c.router.chat(chat("hi"))
        assert decision.escalated is None and decision.tier == "light"
        assert c.requests("s1") == 0
        _, decision = await c.router.chat(chat("hi", max_tokens=2))
        assert decision.escalated == "length" and decision.tier == "strong"


async def test_cascade_falls_back_to_the_light_answer_when_strong_is_down() -> None:
    routing = {**TIERS, "cascade": [{"from": "light", "to": "strong", "checks": ["length"]}]}
    async with cluster(routing, PRICED, sims={"s1": {"fail_all": True}}) as c:
        response, decision = await c.router.chat(chat("hi", max_tokens=2))
        assert decision.escalated == "length" and decision.tier == "light"
        assert response["choices"][0]["finish_reason"] == "length"
        assert c.router.deployments["l1"].in_flight == 0


async def test_learned_head_blends_into_the_score(tmp_path: Any) -> None:
    import numpy as np
    from prometheus_client import CollectorRegistry

    from tidegate.config import ModelConfig, convert_section
    from tidegate.config.routing import RoutingConfig
    from tidegate.providers.upstream import Upstream
    from tidegate.routing import Router, fit_head

    head = fit_head(np.eye(4, dtype=np.float32), [True, False, False, False], kind="knn", k=1)
    path = tmp_path / "head.npz"
    head.save(path)
    config = convert_section(
        {**TIERS, "scorer": {"head": "head.npz", "head_weight": 0.5}}, RoutingConfig, "$.routing"
    )
    upstreams = {
        name: Upstream(name, ModelConfig(url="http://127.0.0.1:9/v1")) for name in ("l1", "s1")
    }
    router = Router(config, upstreams, registry=CollectorRegistry(), base_dir=tmp_path)
    rules_only = router.plan(chat("hi"))
    hard = router.plan(chat("hi"), embedding=[1.0, 0.0, 0.0, 0.0])
    easy = router.plan(chat("hi"), embedding=[0.0, 1.0, 0.0, 0.0])
    assert rules_only.score is not None and hard.score is not None and easy.score is not None
    assert hard.score.value == pytest.approx(0.5 * rules_only.score.value + 0.5)
    assert hard.target.name == "strong" and easy.target.name == "light"
    assert hard.score.signals[0] == ("head", pytest.approx(1.0))
