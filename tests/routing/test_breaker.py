from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.routing.breaker import CircuitBreaker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    options: dict[str, object] = {
        "failure_ratio": 0.5, "min_volume": 4, "window": 10.0, "cooldown": 5.0, "half_open_probes": 2,
    }  # fmt: skip
    options.update(kwargs)
    return CircuitBreaker(clock=clock, **options)  # type: ignore[arg-type]


def test_full_cycle_closed_open_half_open_closed() -> None:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = make(clock, on_change=lambda old, new: changes.append((old, new)))
    for _ in range(2):
        assert breaker.allow()
        breaker.record_success()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "closed"  # 1/3 failed, below min volume anyway
    assert breaker.allow()
    breaker.record_failure()  # 2/4 failed = 0.5 with volume 4: trips
    assert breaker.state == "open"
    assert not breaker.allow() and not breaker.available()
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.2)
    assert breaker.available()
    assert breaker.allow() and breaker.state == "half-open"
    assert breaker.allow()  # second probe
    assert not breaker.allow()  # only two probes at once
    breaker.record_success()
    assert breaker.state == "half-open"
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.counts() == (0, 0)  # a closed breaker starts from a clean window
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, min_volume=1)
    breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(4.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_released_probe_gives_its_slot_back() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, min_volume=1, half_open_probes=1)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_min_volume_protects_quiet_deployments() -> None:
    clock = FakeClock()
    breaker = make(clock, min_volume=10)
    for _ in range(9):
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_failure_count_mode() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=3, failure_ratio=None, min_volume=1)
    for _ in range(20):
        breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()  # 3 failures in the window, ratio only 3/23
    assert breaker.state == "open"


def test_old_failures_leave_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=3, min_volume=1)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(10.5)  # a full window later
    assert breaker.counts() == (0, 0)
    breaker.record_failure()
    assert breaker.state == "closed"


def test_window_slides_bucket_by_bucket() -> None:
    clock = FakeClock(0.0)
    breaker = make(clock, failures=100, min_volume=1)
    breaker.record_failure()  # bucket at t=0
    clock.advance(6.0)
    breaker.record_failure()  # bucket at t=6
    assert breaker.counts() == (2, 2)
    clock.advance(4.5)  # t=10.5: the first bucket fell out
    assert breaker.counts() == (1, 1)


def test_late_failure_after_trip_does_not_extend_the_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, min_volume=1)
    breaker.record_failure()
    clock.advance(3.0)
    breaker.record_failure()  # a call allowed before the trip failing late
    clock.advance(2.0)
    assert breaker.allow()


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(window=0)
    with pytest.raises(ValueError):
        CircuitBreaker(half_open_probes=0)


events = st.lists(
    st.tuples(st.sampled_from(["ok", "fail", "release"]), st.floats(min_value=0.0, max_value=3.0)),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(events=events, min_volume=st.integers(1, 10), ratio=st.floats(0.1, 1.0))
def test_properties_hold_for_any_history(
    events: list[tuple[str, float]], min_volume: int, ratio: float
) -> None:
    """Whatever happens: it never opens on fewer calls than min_volume within the window, an open
    breaker refuses calls until its cooldown passed, and half-open never has more probes out
    than allowed."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_ratio=ratio, min_volume=min_volume, window=10.0, cooldown=5.0,
        half_open_probes=2, clock=clock,
    )  # fmt: skip
    opened_at: float | None = None
    for kind, gap in events:
        clock.advance(gap)
        if breaker.state == "open":
            assert opened_at is not None
            if clock.now - opened_at < 5.0:
                assert not breaker.allow()
                continue
        total_before, _ = breaker.counts()
        state_before = breaker.state
        if not breaker.allow():
            assert breaker.state == "half-open"
            assert breaker._probes_out == 2
            continue
        if kind == "ok":
            breaker.record_success()
        elif kind == "fail":
            breaker.record_failure()
        else:
            breaker.release()
        if breaker.state == "open" and state_before == "closed":
            assert total_before + 1 >= min_volume
        if breaker.state == "open" and opened_at != clock.now:
            opened_at = clock.now
        assert 0 <= breaker._probes_out <= 2
