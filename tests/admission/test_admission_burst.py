"""``burst``: token-bucket semantics (capacity ``burst``, refilled at the rule's rate)."""

from __future__ import annotations

import pytest

from tidegate.admission.meters import BucketMeter
from tidegate.errors import RateLimited

from .admission_support import FakeClock, admitted, info, running


async def burst_size(admission, **fields) -> int:  # type: ignore[no-untyped-def]
    count = 0
    while await admitted(admission, info(**fields)):
        count += 1
        assert count < 10_000
    return count


async def test_burst_allows_capacity_at_once_then_the_steady_rate() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "ip", "requests": "2/second", "burst": 10}]
    ) as admission:
        assert isinstance(admission.rules[0].meters[0], BucketMeter)
        assert await burst_size(admission) == 10  # above the 2/second rate, at once
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info())
        assert caught.value.retry_after == pytest.approx(0.5)  # one request refills in 1/2 s
        assert caught.value.limit == 10
        clock.advance(1.0)
        assert await burst_size(admission) == 2  # refilled at the rate
        clock.advance(60)
        assert await burst_size(admission) == 10  # never above capacity


async def test_burst_below_the_rate_smooths_it() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "ip", "requests": "60/minute", "burst": 3}]
    ) as admission:
        assert await burst_size(admission) == 3  # a plain 60/minute window would allow 60
        for _ in range(5):
            clock.advance(1.0)
            assert await burst_size(admission) == 1


async def test_token_burst_reserves_and_reconciles() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "api_key", "tokens": "100/second", "burst": 5_000}]
    ) as admission:
        ticket = await admission.admit(info(api_key_name="k", est_tokens=4_000))
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info(api_key_name="k", est_tokens=2_000))
        assert caught.value.retry_after == pytest.approx(10.0)  # 1000 missing at 100/s
        await ticket.reconcile(500)
        second = await admission.admit(info(api_key_name="k", est_tokens=2_000))
        headers = second.headers(openai=True)
        assert headers["x-ratelimit-remaining-tokens"] == "2500"
        assert headers["x-ratelimit-limit-tokens"] == "5000"
        ticket.release()
        second.release()


async def test_burst_is_per_identity() -> None:
    async with running(limits=[{"key": "ip", "requests": "1/minute", "burst": 2}]) as admission:
        assert await burst_size(admission, client_ip="192.0.2.1") == 2
        assert await burst_size(admission, client_ip="192.0.2.2") == 2
