"""Each rule kind end to end through Admission: keys, scopes, strategies, combination, protect."""

from __future__ import annotations

import pytest

from tidegate.errors import RateLimited, ShuttingDown, UsageError

from .admission_support import FakeClock, admitted, info, running, sample, section


async def count_admitted(admission, request, attempts: int) -> int:  # type: ignore[no-untyped-def]
    return sum([await admitted(admission, request) for _ in range(attempts)])


async def test_requests_per_ip_refuse_with_retry_after_and_recover() -> None:
    clock = FakeClock()
    async with running(clock=clock, limits=[{"key": "ip", "requests": "3/minute"}]) as admission:
        assert await count_admitted(admission, info(client_ip="203.0.113.1"), 3) == 3
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info(client_ip="203.0.113.1"))
        refused = caught.value
        assert (refused.limit, refused.remaining, refused.rule) == (3, 0, "limits[0].requests")
        assert refused.retry_after == pytest.approx(60)
        assert refused.reset_at == pytest.approx(clock.now + 60)
        assert refused.status == 429 and refused.code == "rate_limit_exceeded"
        assert "3 per minute per ip" in str(refused)
        # Another address has its own budget.
        assert await admitted(admission, info(client_ip="203.0.113.2"))
        clock.advance(60)
        assert await count_admitted(admission, info(client_ip="203.0.113.1"), 4) == 3


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
async def test_every_strategy_enforces_the_rate(strategy: str) -> None:
    clock = FakeClock()
    async with running(
        clock=clock,
        limits=[{"key": "global", "requests": "5/second"}],
        admission={"strategy": strategy},
    ) as admission:
        assert admission.rules[0].meters[0].strategy == strategy  # type: ignore[attr-defined]
        assert await count_admitted(admission, info(), 8) == 5
        clock.advance(3)
        assert await count_admitted(admission, info(), 8) == 5


async def test_multi_part_rate_applies_each_part() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "ip", "requests": "2/second;3/minute"}]
    ) as admission:
        assert await count_admitted(admission, info(), 5) == 2
        clock.advance(1)
        assert await count_admitted(admission, info(), 5) == 1  # the minute part allows one more
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info())
        assert caught.value.limit == 3


@pytest.mark.parametrize(
    ("key", "same", "other"),
    [
        ("api_key", {"api_key_name": "alpha"}, {"api_key_name": "beta"}),
        ("user", {"user": "u1"}, {"user": "u2"}),
        ("tenant", {"tenant": "t1"}, {"tenant": "t2"}),
        ("header:x-org", {"headers": {"x-org": "acme"}}, {"headers": {"x-org": "globex"}}),
    ],
)
async def test_identity_keys_count_separately(key: str, same: dict, other: dict) -> None:  # type: ignore[type-arg]
    async with running(limits=[{"key": key, "requests": "2/minute"}]) as admission:
        # The same identity from different addresses shares one budget...
        assert await admitted(admission, info(client_ip="192.0.2.1", **same))
        assert await admitted(admission, info(client_ip="192.0.2.2", **same))
        assert not await admitted(admission, info(client_ip="192.0.2.3", **same))
        # ...and another identity has its own.
        assert await admitted(admission, info(client_ip="192.0.2.1", **other))


async def test_anonymous_callers_fall_back_to_their_address() -> None:
    async with running(limits=[{"key": "api_key", "requests": "1/minute"}]) as admission:
        assert await admitted(admission, info(client_ip="192.0.2.1"))
        assert not await admitted(admission, info(client_ip="192.0.2.1"))
        assert await admitted(admission, info(client_ip="192.0.2.2"))


async def test_tenant_key_uses_the_api_key_name_when_no_tenant() -> None:
    async with running(limits=[{"key": "tenant", "requests": "1/minute"}]) as admission:
        assert await admitted(admission, info(api_key_name="acme", client_ip="192.0.2.1"))
        assert not await admitted(admission, info(api_key_name="acme", client_ip="192.0.2.9"))


async def test_global_key_counts_everyone_together() -> None:
    async with running(limits=[{"key": "global", "requests": "3/minute"}]) as admission:
        results = [await admitted(admission, info(client_ip=f"192.0.2.{n}")) for n in range(5)]
        assert results == [True, True, True, False, False]


async def test_scope_surface_model_workflow_count_per_value() -> None:
    async with running(
        limits=[
            {"name": "per-surface", "key": "ip", "requests": "1/minute", "scope": "surface"},
            {"name": "per-model", "key": "ip", "requests": "1/minute", "scope": "model"},
            {"name": "per-workflow", "key": "ip", "requests": "1/minute", "scope": "workflow"},
        ]
    ) as admission:
        assert await admitted(admission, info(surface="openai", model="light"))
        assert await admitted(admission, info(surface="dify", workflow="cs"))
        # Same surface again: refused by per-surface, whatever the model.
        assert not await admitted(admission, info(surface="openai", model="strong"))
        assert (
            sample(
                admission, "tidegate_admission_limited_total", rule="per-surface", kind="requests"
            )
            == 1
        )
        # A model-less request from a third surface is not counted by the model/workflow rules.
        assert await admitted(admission, info(surface="admin"))
        assert not await admitted(admission, info(surface="dify", workflow="other"))
        assert sample(admission, "tidegate_admission_admitted_total", rule="per-model") == 1
        assert sample(admission, "tidegate_admission_admitted_total", rule="per-workflow") == 1


async def test_scope_path_glob_filters_requests() -> None:
    async with running(
        limits=[{"key": "ip", "requests": "1/minute", "scope": "/ai/v1/embeddings*"}]
    ) as admission:
        assert await admitted(admission, info(path="/ai/v1/embeddings"))
        assert not await admitted(admission, info(path="/ai/v1/embeddings"))
        assert await count_admitted(admission, info(path="/ai/v1/chat/completions"), 3) == 3


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
async def test_all_rules_must_pass_and_refusals_consume_nothing(strategy: str) -> None:
    async with running(
        limits=[
            {"key": "ip", "requests": "3/minute"},
            {"key": "api_key", "requests": "1/minute"},
        ],
        admission={"strategy": strategy},
    ) as admission:
        # Four of five are refused by the api_key rule; they give their ip hits back...
        assert await count_admitted(admission, info(api_key_name="k1"), 5) == 1
        # ...so the address still has two requests for other keys, and then none.
        assert await count_admitted(admission, info(api_key_name="k2"), 3) == 1
        assert await count_admitted(admission, info(api_key_name="k3"), 3) == 1
        assert await count_admitted(admission, info(api_key_name="k4"), 3) == 0


async def test_fixed_window_retries_do_not_extend_a_lockout() -> None:
    clock = FakeClock()
    async with running(
        clock=clock,
        limits=[{"key": "ip", "requests": "2/minute"}],
        admission={"strategy": "fixed-window"},
    ) as admission:
        assert await count_admitted(admission, info(), 50) == 2  # 48 refused retries
        storage = admission.storage
        key = admission.rules[0].meters[0].key(info().client_ip)  # type: ignore[attr-defined]
        assert await storage.get(key) == 2  # type: ignore[union-attr]


async def test_protect_guards_host_paths_only() -> None:
    async with running(
        limits=[{"key": "ip", "requests": "1/minute"}],
        protect=[{"path": ["/api/*", "/login"], "key": "ip", "requests": "2/minute"}],
    ) as admission:
        assert admission.guards("/api/orders/1") and admission.guards("/login")
        assert not admission.guards("/static/app.js")
        host = {"surface": "host"}
        assert await count_admitted(admission, info(path="/api/orders/1", **host), 3) == 2
        assert not await admitted(admission, info(path="/login", **host))
        assert await count_admitted(admission, info(path="/static/app.js", **host), 5) == 5
        # The surfaces' rules are separate from protect rules.
        assert await admitted(admission, info(path="/ai/v1/chat/completions"))
        assert not await admitted(admission, info(path="/ai/v1/chat/completions"))


async def test_no_rules_admits_everything() -> None:
    async with running() as admission:
        ticket = await admission.admit(info())
        assert ticket.headers() == {}
        async with ticket:
            pass


async def test_lifecycle_errors() -> None:
    from tidegate.admission import Admission

    admission = Admission(section(limits=[{"requests": "1/second"}]))
    with pytest.raises(UsageError, match="before start"):
        await admission.admit(info())
    await admission.start()
    with pytest.raises(UsageError, match="is open"):
        await admission.start()
    await admission.close()
    with pytest.raises(ShuttingDown):
        await admission.admit(info())
    await admission.close()  # idempotent
