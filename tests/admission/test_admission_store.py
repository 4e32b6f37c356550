"""LocalStorage under `limits`' own strategies, checked against simple reference models."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.limits import RateLimitItemPerMinute

from tidegate.admission.meters import TokenMeter, WindowMeter, sliding_wait
from tidegate.admission.store import LocalStorage

from .admission_support import T0, FakeClock

steps = st.lists(
    st.tuples(st.floats(0, 30, allow_nan=False), st.integers(1, 4)), min_size=1, max_size=60
)


@settings(max_examples=80, deadline=None)
@given(steps, st.integers(1, 12))
async def test_moving_window_matches_a_log_of_hits(
    ops: list[tuple[float, int]], limit: int
) -> None:
    clock = FakeClock()
    limiter = MovingWindowRateLimiter(LocalStorage(clock=clock))
    item = RateLimitItemPerMinute(limit)
    log: list[tuple[float, int]] = []  # the reference: every accepted hit with its time
    for advance, cost in ops:
        clock.advance(advance)
        in_window = sum(n for t, n in log if t >= clock.now - 60)
        expected = in_window + cost <= limit
        assert await limiter.hit(item, "k", cost=cost) is expected
        if expected:
            log.append((clock.now, cost))
        stats = await limiter.get_window_stats(item, "k")
        assert stats.remaining == limit - sum(n for t, n in log if t >= clock.now - 60)


@settings(max_examples=80, deadline=None)
@given(steps, st.integers(1, 12))
async def test_sliding_window_counter_matches_the_formula(
    ops: list[tuple[float, int]], limit: int
) -> None:
    clock = FakeClock()
    limiter = SlidingWindowCounterRateLimiter(LocalStorage(clock=clock))
    item = RateLimitItemPerMinute(limit)
    counts: dict[int, int] = {}  # reference: accepted units per aligned 60 s window
    for advance, cost in ops:
        clock.advance(advance)
        window = int(clock.now // 60)
        left = (window + 1) * 60 - clock.now
        weighted = counts.get(window - 1, 0) * left / 60 + counts.get(window, 0)
        expected = math.floor(weighted) + cost <= limit
        assert await limiter.hit(item, "k", cost=cost) is expected
        if expected:
            counts[window] = counts.get(window, 0) + cost


@settings(max_examples=80, deadline=None)
@given(steps, st.integers(1, 12))
async def test_fixed_window_matches_counters(ops: list[tuple[float, int]], limit: int) -> None:
    clock = FakeClock()
    limiter = FixedWindowRateLimiter(LocalStorage(clock=clock))
    item = RateLimitItemPerMinute(limit)
    started: float | None = None
    used = 0
    for advance, cost in ops:
        clock.advance(advance)
        if started is None or clock.now >= started + 60:
            started, used = clock.now, 0
        used += cost  # fixed window counts refused hits too (limits' documented behaviour)
        assert await limiter.hit(item, "k", cost=cost) is (used <= limit)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 6)), max_size=60),
    st.integers(1, 10),
    st.sampled_from([0.5, 1.0, 3.0]),
)
def test_gcra_bucket_matches_a_token_level(
    ops: list[tuple[float, int]], capacity: int, rate: float
) -> None:
    clock = FakeClock()
    storage = LocalStorage(clock=clock)
    level = float(capacity)  # reference: tokens in the bucket
    for advance, cost in ops:
        clock.advance(advance)
        level = min(capacity, level + advance * rate)
        wait = storage.acquire_bucket("b", capacity, rate, cost)
        if level + 1e-6 >= cost:
            assert wait == 0.0
            level -= cost
        else:
            assert wait > 0
            assert math.isclose(wait, (cost - level) / rate, abs_tol=1e-6)
        remaining, _ = storage.get_bucket("b", capacity, rate)
        assert remaining == math.floor(level + 1e-6)


def test_bucket_adjust_refunds_but_never_above_full() -> None:
    clock = FakeClock()
    storage = LocalStorage(clock=clock)
    assert storage.acquire_bucket("b", 10, 1.0, 8) == 0.0
    storage.adjust_bucket("b", 1.0, -5)
    assert storage.get_bucket("b", 10, 1.0)[0] == 7
    storage.adjust_bucket("b", 1.0, -50)
    assert storage.get_bucket("b", 10, 1.0) == (10, 0.0)
    storage.adjust_bucket("b", 1.0, 4)
    assert storage.get_bucket("b", 10, 1.0)[0] == 6


def test_idle_keys_are_swept_as_new_writes_arrive() -> None:
    clock = FakeClock()
    storage = LocalStorage(clock=clock)
    for index in range(1000):
        storage.acquire_bucket(f"ip{index}", 5, 1.0, 5)
    assert len(storage) == 1000
    clock.advance(10)  # every bucket is full again: the records are dead weight
    for index in range(300):
        storage.acquire_bucket(f"new{index}", 5, 1.0, 1)
    # Each write sweeps a few expired records from the front: old keys go without any scan.
    assert len(storage) <= 1000 + 300 - 3 * 300


async def test_token_meter_refund_lands_in_the_charged_window() -> None:
    clock = FakeClock()
    storage = LocalStorage(clock=clock)
    meter = TokenMeter(storage, RateLimitItemPerMinute(1000), label="t")
    hold = await meter.take("k", 600)
    assert hold is not None
    clock.advance(60)  # next window: the 600 now weigh in as the previous window
    before = storage.sliding_window(meter.key("k"), 60)
    assert before[0] == 600 and before[2] == 0
    await meter.adjust(hold, -400)  # the request used 200
    after = storage.sliding_window(meter.key("k"), 60)
    assert after[0] == 200 and after[2] == 0
    await meter.adjust(hold, 50)  # an extra charge lands in the current window
    assert storage.sliding_window(meter.key("k"), 60)[2] == 50


def test_meter_keys_match_limits_key_for() -> None:
    storage = LocalStorage()
    for spec in ("5/second", "100/2 minutes", "7/day"):
        item = parse(spec)
        item.namespace = "tidegate/limits[0]/requests"
        meter = WindowMeter(storage, "moving-window", item, kind="requests", label="x")
        assert meter.key("1.2.3.4|m=gpt") == item.key_for("1.2.3.4|m=gpt")


@given(
    st.integers(0, 50), st.floats(0, 60), st.integers(0, 50), st.integers(1, 60), st.integers(1, 10)
)
def test_sliding_wait_is_when_the_formula_admits(
    prev: int, into: float, cur: int, limit: int, cost: int
) -> None:
    """Advancing by the computed wait makes the weighted count admit ``cost`` (and not earlier)."""
    expiry = 60.0
    left = expiry - min(into, 59.999)

    def fits(after: float) -> bool:
        if after < left:
            weighted = prev * (left - after) / expiry + cur
        elif after < left + expiry:
            weighted = cur * (left + expiry - after) / expiry
        else:
            weighted = 0
        return weighted + cost <= limit + 1e-6

    wait = sliding_wait(prev, left if prev else 0.0, cur, left + expiry if cur else 0.0,
                        expiry=expiry, limit=limit, cost=cost)  # fmt: skip
    if cost > limit:
        return
    assert fits(wait + 1e-6)
    if wait > 0.01:
        assert not fits(wait - 0.01)


async def test_storage_protocol_basics() -> None:
    clock = FakeClock(T0)
    storage = LocalStorage(clock=clock)
    assert await storage.check()
    assert await storage.incr("c", 10) == 1
    assert await storage.incr("c", 10, 4) == 5
    assert await storage.get("c") == 5
    assert await storage.get_expiry("c") == T0 + 10
    clock.advance(10)
    assert await storage.get("c") == 0
    await storage.incr("c", 10)
    await storage.clear("c")
    assert await storage.get("c") == 0
    await storage.incr("d", 10)
    assert await storage.reset() == 1
