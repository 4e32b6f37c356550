"""Live state of one deployment as the router sees it: load, latency, quotas, breaker.

The balancer reads this on every choice, so everything here is O(1): in-flight is a counter,
latency a time-decayed EWMA (recent calls matter more, and an idle deployment's estimate does not
freeze), and rpm/tpm use a sliding-window counter (two fixed windows weighted by overlap — the
approximation `limits` calls sliding-window-counter) instead of one entry per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .breaker import CircuitBreaker

__all__ = ["Deployment", "SlidingCounter"]

_EWMA_TAU = 10.0
"""Seconds for an old latency sample's weight to fall to 1/e."""

_FAILURE_PENALTY = 1.0
"""Seconds recorded as latency for a failed call, so a deployment that fails fast (connection
refused in microseconds) does not look like the fastest one to a latency balancer."""


class SlidingCounter:
    """Approximate count of units added during the last ``window`` seconds."""

    __slots__ = ("_clock", "_current", "_previous", "_start", "window")

    def __init__(
        self, window: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._start = math.floor(clock() / window) * window
        self._current = 0.0
        self._previous = 0.0

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed < self.window:
            return
        if elapsed < 2 * self.window:
            self._previous = self._current
        else:
            self._previous = 0.0
        self._current = 0.0
        self._start = math.floor(now / self.window) * self.window

    def value(self) -> float:
        now = self._clock()
        self._roll(now)
        overlap = 1.0 - (now - self._start) / self.window
        return self._current + self._previous * overlap

    def add(self, amount: float = 1.0) -> None:
        self._roll(self._clock())
        self._current += amount


class Deployment:
    """One model deployment inside the router: its upstream client plus live state."""

    __slots__ = (
        "_clock",
        "_ewma_at",
        "breaker",
        "cooldown_until",
        "ewma",
        "in_flight",
        "input_price",
        "max_concurrency",
        "name",
        "output_price",
        "requests",
        "rpm",
        "tokens",
        "tpm",
        "upstream",
        "weight",
    )

    def __init__(
        self,
        name: str,
        upstream: Any,
        *,
        breaker: CircuitBreaker,
        weight: float = 1.0,
        max_concurrency: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        input_price: float = 0.0,
        output_price: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.breaker = breaker
        self.weight = max(0.0, weight)
        self.max_concurrency = max_concurrency
        self.rpm = rpm
        self.tpm = tpm
        self.input_price = input_price
        self.output_price = output_price
        self.in_flight = 0
        self.ewma = 0.0
        self.cooldown_until = 0.0
        self._clock = clock
        self._ewma_at = clock()
        self.requests = SlidingCounter(60.0, clock=clock) if rpm is not None else None
        self.tokens = SlidingCounter(60.0, clock=clock) if tpm is not None else None

    def __repr__(self) -> str:
        return (
            f"Deployment({self.name!r}, in_flight={self.in_flight}, ewma={self.ewma * 1000:.1f}ms,"
            f" breaker={self.breaker.state!r})"
        )

    def available(self, tokens: int = 0, *, queue: bool = False) -> bool:
        """Whether this deployment may take a call now (breaker, Retry-After, caps and quotas).

        ``queue=True`` ignores the concurrency cap: the upstream's connection pool (sized by the
        same ``max_concurrency``) then queues the call, which beats refusing it when every
        sibling is full too.
        """
        if self.cooldown_until and self._clock() < self.cooldown_until:
            return False
        if (
            not queue
            and self.max_concurrency is not None
            and self.in_flight >= self.max_concurrency
        ):
            return False
        if (
            self.requests is not None
            and self.rpm is not None
            and self.requests.value() + 1 > self.rpm
        ):
            return False
        if (
            self.tokens is not None
            and self.tpm is not None
            and self.tokens.value() + tokens > self.tpm
            and self.tokens.value() > 0
        ):
            return False
        return self.breaker.available()

    def cooldown_left(self) -> float:
        """Seconds left of a Retry-After this deployment asked for (<= 0 when none)."""
        return self.cooldown_until - self._clock() if self.cooldown_until else 0.0

    def wait_hint(self) -> float:
        """Seconds until this deployment is likely available again (0 if unknown or now)."""
        return max(0.0, self.cooldown_until - self._clock(), self.breaker.retry_in())

    def begin(self, tokens: int = 0) -> None:
        self.in_flight += 1
        if self.requests is not None:
            self.requests.add(1.0)
        if self.tokens is not None and tokens:
            self.tokens.add(float(tokens))

    def end(self, latency: float, *, ok: bool) -> None:
        """A call finished: free its slot and feed its latency (a penalty if it failed)."""
        self.in_flight = max(0, self.in_flight - 1)
        self.observe(latency if ok else max(latency, _FAILURE_PENALTY, self.ewma * 2))

    def done(self) -> None:
        """A call finished without a latency worth learning from (cancelled, refused, streamed)."""
        self.in_flight = max(0, self.in_flight - 1)

    def add_tokens(self, tokens: int) -> None:
        """Reconcile the tpm window with what the upstream reported beyond the estimate."""
        if self.tokens is not None and tokens > 0:
            self.tokens.add(float(tokens))

    def latency(self) -> float:
        """The EWMA decayed toward zero for the time since its last sample.

        Read this way (as Finagle's peak EWMA is), a deployment penalized for being slow or
        failing earns another try after a while instead of starving forever behind its siblings.
        """
        elapsed = self._clock() - self._ewma_at
        if elapsed <= 0.0 or self.ewma == 0.0:
            return self.ewma
        return self.ewma * math.exp(-elapsed / _EWMA_TAU)

    def observe(self, latency: float) -> None:
        now = self._clock()
        if self.ewma == 0.0:
            self.ewma = latency
        else:
            decay = math.exp(-max(0.0, now - self._ewma_at) / _EWMA_TAU)
            # A sample also counts for at least 10 %, so a busy deployment adapts within ~10 calls.
            keep = min(decay, 0.9)
            self.ewma = self.ewma * keep + latency * (1.0 - keep)
        self._ewma_at = now

    def cost(self, usage: object) -> float:
        """Price of one call from its ``usage`` (prices are per 1M tokens)."""
        if not isinstance(usage, dict):
            return 0.0
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
            return 0.0
        return (prompt * self.input_price + completion * self.output_price) / 1_000_000.0
