from __future__ import annotations

import pytest

from tidegate.routing.breaker import CircuitBreaker
from tidegate.routing.deployment import Deployment, SlidingCounter

from .test_breaker import FakeClock


def make(clock: FakeClock, **kwargs: object) -> Deployment:
    return Deployment(
        "d", None, breaker=CircuitBreaker(failures=1, min_volume=1, cooldown=5.0, clock=clock),
        clock=clock, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def test_sliding_counter_weights_the_previous_window() -> None:
    clock = FakeClock(0.0)
    counter = SlidingCounter(60.0, clock=clock)
    counter.add(10)
    assert counter.value() == 10
    clock.advance(60.0 + 15.0)  # a quarter into the next window: 3/4 of the old one still counts
    assert counter.value() == pytest.approx(7.5)
    counter.add(2)
    assert counter.value() == pytest.approx(9.5)
    clock.advance(120.0)
    assert counter.value() == 0


def test_rpm_quota() -> None:
    clock = FakeClock(0.0)
    deployment = make(clock, rpm=2)
    for _ in range(2):
        assert deployment.available()
        deployment.begin()
        deployment.end(0.01, ok=True)
    assert not deployment.available()
    clock.advance(120.0)
    assert deployment.available()


def test_tpm_quota_counts_estimates_and_reconciled_tokens() -> None:
    clock = FakeClock(0.0)
    deployment = make(clock, tpm=1000)
    assert deployment.available(tokens=5000)  # an empty window lets one big request in
    deployment.begin(tokens=600)
    deployment.end(0.01, ok=True)
    assert deployment.available(tokens=300)
    assert not deployment.available(tokens=500)
    deployment.add_tokens(500)
    assert not deployment.available(tokens=1)


def test_max_concurrency() -> None:
    clock = FakeClock()
    deployment = make(clock, max_concurrency=1)
    deployment.begin()
    assert not deployment.available()
    assert deployment.available(queue=True)  # may still queue in the upstream's pool
    deployment.done()
    assert deployment.available()


def test_retry_after_cooldown_and_open_breaker() -> None:
    clock = FakeClock()
    deployment = make(clock)
    deployment.cooldown_until = clock.now + 2.0
    assert not deployment.available()
    assert deployment.wait_hint() == pytest.approx(2.0)
    clock.advance(2.0)
    assert deployment.available()
    deployment.breaker.record_failure()
    assert not deployment.available()
    assert deployment.wait_hint() == pytest.approx(5.0)


def test_ewma_tracks_recent_latency_and_penalizes_failures() -> None:
    clock = FakeClock()
    deployment = make(clock)
    deployment.observe(0.1)
    assert deployment.ewma == pytest.approx(0.1)
    for _ in range(50):
        clock.advance(0.01)
        deployment.observe(0.2)
    assert deployment.ewma == pytest.approx(0.2, rel=0.02)
    deployment.begin()
    deployment.end(0.001, ok=False)  # a fast failure must not look fast
    assert deployment.ewma > 0.2


def test_cost_from_usage() -> None:
    deployment = make(FakeClock(), input_price=2.5, output_price=10.0)
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    assert deployment.cost(usage) == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)
    assert deployment.cost(None) == 0.0
    assert deployment.cost({"prompt_tokens": "x"}) == 0.0


def test_latency_estimate_decays_while_idle_so_nobody_starves() -> None:
    clock = FakeClock()
    deployment = make(clock)
    deployment.begin()
    deployment.end(0.001, ok=False)  # penalized
    assert deployment.latency() >= 1.0
    clock.advance(60.0)
    assert deployment.latency() < 0.01
