"""A per-deployment circuit breaker: closed → open → half-open → closed.

Counting happens in a ring of time buckets so the failure ratio reflects the last ``window``
seconds without keeping one entry per call (thousands of calls per second cost the same as ten).
A minimum volume keeps one unlucky call on a quiet deployment from tripping it. While open, no
traffic is sent; after ``cooldown`` a few probe calls are let through (half-open) and their
outcome decides between closing again and another cooldown. The clock is injected so tests can
walk through every transition without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half-open"]

_BUCKETS = 10


class CircuitBreaker:
    """Decides whether a deployment may take a call; told the outcome of each call it allowed.

    Protocol: ``allow()`` before a call; then exactly one of ``record_success()``,
    ``record_failure()`` or ``release()`` (the call ended without saying anything about health,
    e.g. it was cancelled or the client's request was invalid).
    """

    __slots__ = (
        "_bucket_width",
        "_buckets_fail",
        "_buckets_total",
        "_clock",
        "_cursor",
        "_cursor_epoch",
        "_on_change",
        "_opened_at",
        "_probe_ok",
        "_probes_out",
        "cooldown",
        "failure_ratio",
        "failures",
        "half_open_probes",
        "min_volume",
        "state",
        "window",
    )

    def __init__(
        self,
        *,
        failures: int | None = None,
        failure_ratio: float | None = None,
        min_volume: int = 5,
        window: float = 30.0,
        cooldown: float = 15.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failures is None and failure_ratio is None:
            failure_ratio = 0.5
        if window <= 0 or min_volume < 1 or half_open_probes < 1:
            raise ValueError("Expected window > 0, min_volume >= 1 and half_open_probes >= 1")
        self.failures = failures
        self.failure_ratio = failure_ratio if failures is None else None
        self.min_volume = min_volume
        self.window = float(window)
        self.cooldown = float(cooldown)
        self.half_open_probes = half_open_probes
        self.state: BreakerState = "closed"
        self._clock = clock
        self._on_change = on_change
        self._bucket_width = self.window / _BUCKETS
        self._buckets_total = [0] * _BUCKETS
        self._buckets_fail = [0] * _BUCKETS
        self._cursor = 0
        self._cursor_epoch = math.floor(clock() / self._bucket_width)
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_ok = 0

    def __repr__(self) -> str:
        total, failed = self.counts()
        return f"CircuitBreaker(state={self.state!r}, window={failed}/{total} failed)"

    # -- queries -------------------------------------------------------------------------------

    def available(self) -> bool:
        """Whether ``allow()`` would say yes now, without reserving anything (for the balancer)."""
        if self.state == "closed":
            return True
        if self.state == "open":
            return self._clock() - self._opened_at >= self.cooldown
        return self._probes_out < self.half_open_probes

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def counts(self) -> tuple[int, int]:
        """(calls, failures) seen within the rolling window."""
        self._advance()
        return sum(self._buckets_total), sum(self._buckets_fail)

    # -- protocol ------------------------------------------------------------------------------

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            if self._clock() - self._opened_at < self.cooldown:
                return False
            self._set("half-open")
            self._probes_out = 0
            self._probe_ok = 0
        if self._probes_out >= self.half_open_probes:
            return False
        self._probes_out += 1
        return True

    def record_success(self) -> None:
        if self.state == "half-open":
            self._probes_out = max(0, self._probes_out - 1)
            self._probe_ok += 1
            if self._probe_ok >= self.half_open_probes:
                self._reset_window()
                self._set("closed")
            return
        self._count(failed=False)

    def record_failure(self) -> None:
        if self.state == "half-open":
            self._trip()
            return
        if self.state == "open":
            return  # a call allowed before the trip finished late; the trip already counted
        self._count(failed=True)
        total, failed = sum(self._buckets_total), sum(self._buckets_fail)
        if total < self.min_volume:
            return
        if self.failures is not None:
            tripped = failed >= self.failures
        else:
            tripped = failed >= (self.failure_ratio or 0.5) * total
        if tripped:
            self._trip()

    def release(self) -> None:
        """The allowed call ended without a verdict; give a half-open probe slot back."""
        if self.state == "half-open":
            self._probes_out = max(0, self._probes_out - 1)

    # -- internals -----------------------------------------------------------------------------

    def _trip(self) -> None:
        self._opened_at = self._clock()
        self._probes_out = 0
        self._probe_ok = 0
        self._reset_window()
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        old, self.state = self.state, state
        if old != state and self._on_change is not None:
            self._on_change(old, state)

    def _count(self, *, failed: bool) -> None:
        self._advance()
        self._buckets_total[self._cursor] += 1
        if failed:
            self._buckets_fail[self._cursor] += 1

    def _advance(self) -> None:
        """Move the ring to the current bucket, zeroing the buckets that fell out of the window."""
        epoch = math.floor(self._clock() / self._bucket_width)
        steps = epoch - self._cursor_epoch
        if steps <= 0:
            return
        if steps >= _BUCKETS:
            self._reset_window()
        else:
            for _ in range(steps):
                self._cursor = (self._cursor + 1) % _BUCKETS
                self._buckets_total[self._cursor] = 0
                self._buckets_fail[self._cursor] = 0
        self._cursor_epoch = epoch

    def _reset_window(self) -> None:
        for index in range(_BUCKETS):
            self._buckets_total[index] = 0
            self._buckets_fail[index] = 0
