"""Token budgets: estimate, atomic reservation under concurrency, reconcile, refund on refusal."""

from __future__ import annotations

import asyncio
import random

import pytest

from tidegate.admission import (
    Ticket,
    estimate_chat_tokens,
    estimate_text_tokens,
    estimate_value_tokens,
)
from tidegate.errors import Overloaded, RateLimited

from .admission_support import FakeClock, info, running


def window_count(admission, key_value: str) -> float:  # type: ignore[no-untyped-def]
    """Weighted units in the first token meter's sliding window for one identity."""
    meter = admission.rules[0].meters[0]
    prev, prev_ttl, cur, _ = admission.storage.sliding_window(meter.key(key_value), meter.expiry)
    return prev * prev_ttl / meter.expiry + cur


async def test_concurrent_burst_never_reserves_more_than_the_limit() -> None:
    limit, estimate = 10_000, 700
    async with running(limits=[{"key": "api_key", "tokens": f"{limit}/minute"}]) as admission:
        start = asyncio.Event()

        async def one() -> Ticket | None:
            await start.wait()  # all 60 reach admit() in the same loop iteration
            try:
                return await admission.admit(info(api_key_name="k", est_tokens=estimate))
            except RateLimited:
                return None

        tasks = [asyncio.create_task(one()) for _ in range(60)]
        await asyncio.sleep(0)
        start.set()
        tickets = [t for t in await asyncio.gather(*tasks) if t is not None]
        reserved = sum(t.reserved_tokens for t in tickets)
        assert reserved <= limit  # overshoot bound: zero at reservation time
        assert len(tickets) == limit // estimate  # and nothing refused that would have fit
        assert window_count(admission, "k") == reserved
        for ticket in tickets:
            ticket.release()


async def test_reserve_work_reconcile_holds_the_bound() -> None:
    """Requests reserve, run (really awaiting), then reconcile to their actual usage.

    Usage above the estimate is the only overshoot possible, and it is bounded by that excess:
    the budget is never exceeded by more than one request's estimate.
    """
    limit, estimate = 20_000, 1_000
    rng = random.Random(7)
    async with running(limits=[{"key": "api_key", "tokens": f"{limit}/minute"}]) as admission:
        peak = 0.0

        async def one() -> bool:
            nonlocal peak
            try:
                ticket = await admission.admit(info(api_key_name="k", est_tokens=estimate))
            except RateLimited:
                return False
            async with ticket:
                await asyncio.sleep(rng.uniform(0, 0.01))
                await ticket.reconcile(rng.randint(100, 1_200))  # up to 20 % above the estimate
                peak = max(peak, window_count(admission, "k"))
            return True

        results = await asyncio.gather(*(one() for _ in range(200)))
        assert any(results) and not all(results)
        assert peak <= limit + estimate


async def test_reconcile_refunds_so_more_requests_fit() -> None:
    async with running(limits=[{"key": "api_key", "tokens": "10000/minute"}]) as admission:
        first = await admission.admit(info(api_key_name="k", est_tokens=8_000))
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info(api_key_name="k", est_tokens=4_000))
        assert caught.value.rule == "limits[0].tokens"
        assert caught.value.remaining == 2_000
        await first.reconcile(1_500)
        await first.reconcile(9_999)  # only the first reconcile counts
        second = await admission.admit(info(api_key_name="k", est_tokens=4_000))
        assert window_count(admission, "k") == 5_500
        await second.reconcile(6_000)  # usage above the estimate is charged
        assert window_count(admission, "k") == 7_500
        first.release()
        second.release()


async def test_reconcile_after_the_window_rolls_refunds_the_charged_window() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "api_key", "tokens": "1000/minute"}]
    ) as admission:
        ticket = await admission.admit(info(api_key_name="k", est_tokens=900))
        clock.advance(60 - (clock.now % 60) + 30)  # halfway through the next window
        assert window_count(admission, "k") == pytest.approx(450)
        await ticket.reconcile(100)
        assert window_count(admission, "k") == pytest.approx(50)


async def test_request_larger_than_the_budget_runs_alone() -> None:
    async with running(limits=[{"key": "api_key", "tokens": "1000/minute"}]) as admission:
        ticket = await admission.admit(info(api_key_name="k", est_tokens=50_000))
        assert ticket.reserved_tokens == 1000
        with pytest.raises(RateLimited):
            await admission.admit(info(api_key_name="k", est_tokens=1))


async def test_refused_or_shed_requests_give_their_reservation_back() -> None:
    async with running(
        limits=[
            {"key": "api_key", "tokens": "10000/minute"},
            {"key": "ip", "requests": "1/minute"},
            {"key": "global", "concurrency": 1},
        ]
    ) as admission:
        holder = await admission.admit(
            info(api_key_name="k", est_tokens=3_000, client_ip="192.0.2.1")
        )
        with pytest.raises(RateLimited):  # the ip rule refuses after the tokens were reserved
            await admission.admit(info(api_key_name="k", est_tokens=3_000, client_ip="192.0.2.1"))
        with pytest.raises(Overloaded):  # the concurrency cap sheds after the reservation
            await admission.admit(info(api_key_name="k", est_tokens=3_000, client_ip="192.0.2.2"))
        assert window_count(admission, "k") == 3_000
        holder.release()


def test_estimates() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("hello world, how are you?") == 7  # 25 chars / 4, rounded up
    assert estimate_text_tokens("你好，世界") == 5  # CJK: about one token per character
    assert estimate_text_tokens("price: 价格") == 2 + 2
    assert estimate_value_tokens({"a": ["abcd", {"b": "efgh"}], "n": 3}) == 2
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}
    assert estimate_chat_tokens(body) == 4 + 100 + 100
    assert (
        estimate_chat_tokens(
            {"messages": [{"role": "user", "content": "hi"}]}, default_max_tokens=50
        )
        == 4 + 1 + 50
    )
    parts = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}],
        "max_completion_tokens": 0,
    }
    assert estimate_chat_tokens(parts) == 4 + 2 + 1  # "text" + the text
    assert estimate_chat_tokens({"input": "a" * 40}) == 10  # embeddings: no completion budget


async def test_admission_estimate_uses_the_configured_default() -> None:
    async with running(admission={"default_max_tokens": 64}) as admission:
        assert admission.estimate_chat({"messages": []}) == 64
