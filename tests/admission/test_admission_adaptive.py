"""``concurrency: auto``: the limit follows measured upstream latency."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.admission.adaptive import GradientLimit
from tidegate.config.admission import AdaptiveConfig
from tidegate.errors import Overloaded, UpstreamError

from .admission_support import info, running, sample


def feed(limit: GradientLimit, rtt: float, *, windows: int, inflight: int | None = None,
         failed: bool = False, start: float = 0.0) -> float:  # fmt: skip
    """``windows`` update windows of 10 results each, 50 ms apart (a simulated clock)."""
    now = start
    for _ in range(windows):
        for _ in range(10):
            now += 0.005
            used = limit.current if inflight is None else inflight
            limit.observe(rtt, used, failed=failed, now=now)
    return now


def test_steady_latency_grows_the_limit_and_slow_latency_shrinks_it() -> None:
    limit = GradientLimit(AdaptiveConfig(initial=10, max=200))
    now = feed(limit, 0.010, windows=40)
    grown = limit.current
    assert grown > 20
    assert limit.baseline == pytest.approx(0.010)
    feed(limit, 0.080, windows=10, start=now)
    assert limit.current < grown / 2
    assert limit.recent == pytest.approx(0.080)


def test_latency_within_tolerance_does_not_shrink() -> None:
    limit = GradientLimit(AdaptiveConfig(initial=10, tolerance=1.5))
    now = feed(limit, 0.010, windows=5)
    before = limit.current
    feed(limit, 0.014, windows=5, start=now)
    assert limit.current >= before


def test_unused_limit_does_not_grow() -> None:
    limit = GradientLimit(AdaptiveConfig(initial=20))
    feed(limit, 0.010, windows=50, inflight=3)
    assert limit.current == 20


def test_a_slower_upstream_becomes_the_baseline_after_the_window() -> None:
    limit = GradientLimit(AdaptiveConfig(initial=10, baseline_window=1.0))
    now = feed(limit, 0.010, windows=10)
    now = feed(limit, 0.050, windows=50, start=now)  # 2.5 s: two baseline periods
    assert limit.baseline == pytest.approx(0.050)


def test_failures_back_off_once_per_window_down_to_min() -> None:
    limit = GradientLimit(AdaptiveConfig(initial=100, min=5, backoff=0.5))
    now = feed(limit, 0.01, windows=2, inflight=100, failed=True)
    assert limit.current == 50  # twenty failures, one full window: one cut
    feed(limit, 0.01, windows=20, inflight=100, failed=True, start=now)
    assert limit.current == 5


@given(
    st.lists(st.tuples(st.floats(1e-4, 10), st.integers(0, 2000), st.booleans()), max_size=200),
    st.integers(1, 50),
    st.integers(50, 1000),
)
def test_limit_always_stays_within_bounds(
    samples: list[tuple[float, int, bool]], low: int, high: int
) -> None:
    limit = GradientLimit(AdaptiveConfig(initial=low, min=low, max=high, samples=1))
    for index, (rtt, inflight, failed) in enumerate(samples):
        value = limit.observe(rtt, inflight, failed=failed, now=index * 0.03)
        assert low <= value <= high


async def test_limit_backs_off_when_the_upstream_slows_down() -> None:
    """Drive the gate with real measured latencies: tasks that hold their slot by sleeping."""
    async with running(
        limits=[
            {
                "key": "global",
                "concurrency": "auto",
                "queue": 100,
                "queue_timeout": "10s",
                "adaptive": {"initial": 8, "max": 64},
            }
        ]
    ) as admission:
        latency = 0.004
        stop = False

        async def client() -> None:
            while not stop:
                try:
                    async with await admission.admit(info()):
                        await asyncio.sleep(latency)  # the "upstream"
                except Overloaded:
                    await asyncio.sleep(0.001)

        workers = [asyncio.create_task(client()) for _ in range(40)]
        try:
            pool = admission.rules[0].gate_pool
            assert pool is not None

            def current() -> int:
                return pool.gates["*"].limit

            await asyncio.sleep(0.6)
            fast = current()
            latency = 0.040  # the upstream slows down ten-fold
            started = time.monotonic()
            while current() >= fast / 2 and time.monotonic() - started < 5:
                await asyncio.sleep(0.05)
            slow = current()
        finally:
            stop = True
            await asyncio.gather(*workers)
        assert fast > 8  # it probed upward while latency held
        assert slow < fast / 2  # and backed off once latency rose
        learned = pool._learned["*"][1]  # the gate went idle; what it learned is kept
        assert learned is not None
        assert (
            sample(admission, "tidegate_admission_concurrency_limit", rule="limits[0]")
            == learned.current
        )


async def test_upstream_errors_cut_the_limit() -> None:
    async with running(
        limits=[
            {
                "key": "global",
                "concurrency": "auto",
                "adaptive": {"initial": 40, "backoff": 0.5, "interval": "1ms"},
            }
        ]
    ) as admission:
        pool = admission.rules[0].gate_pool
        assert pool is not None
        for _ in range(3):  # each failure closes the window the previous one opened
            with contextlib.suppress(UpstreamError):
                async with await admission.admit(info()):
                    await asyncio.sleep(0.002)
                    raise UpstreamError("upstream 503", upstream_status=503)
        learned = pool._learned["*"][1]
        assert learned is not None and learned.current == 10
        ticket = await admission.admit(info())
        await asyncio.sleep(0.002)
        ticket.observe(0.01, failed=True)  # an explicit report works the same
        ticket.release()
        assert learned.current == 5
        assert sample(admission, "tidegate_admission_concurrency_limit", rule="limits[0]") == 5
