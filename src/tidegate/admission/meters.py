"""Meters: one rate of one rule, counted in a `limits` storage.

A meter takes ``cost`` units for an identity and hands back a :class:`Hold` (or ``None`` when the
rate is spent); token meters can later ``adjust`` a hold by the difference between the estimate
and the upstream's reported usage.

* **Request rates** go through `limits`' strategy chosen in ``admission.strategy``.
* **Token rates** always use `limits`' sliding-window counter: one counter pair per key whatever
  the cost (moving window stores an entry per unit: a 1M-token budget would be a 1M-entry log).
  The check and the increment are one atomic step — no suspension point in :class:`LocalStorage`,
  one Lua script on Redis — so a concurrent burst can never reserve more than the limit; the
  only overshoot left is usage above the estimate, charged at reconcile time.
* **Burst** (``burst: B`` on a rate ``r``/s) is a token bucket of capacity B refilled at r.
  `limits` has no bucket, so the mapping depends on the storage:

  - in process (:class:`LocalStorage`): an exact GCRA bucket, one float per key;
  - shared (Redis): a sliding-window counter of ``B`` units over ``W = ceil(B / r)`` seconds.
    After a full burst the previous window's weight decays linearly at ``B / W <= r`` per second,
    which is the bucket's refill; the approximation is conservative (the long-run rate is
    ``B / W``, at most ``r``) and, like the window counter itself, assumes hits spread over the
    previous window.

A refused request consumes nothing: ``undo`` takes back the units a request took from other
meters before one refused it, and the refusing fixed-window hit itself (`limits`' fixed window
counts refused hits, so a client retrying in a loop would otherwise stay locked out). Exact in
process; on Redis window counters are decremented, but a moving-window log entry cannot be
removed individually, so it stays counted.

Reconcile on Redis adds to (or refunds from, never below zero) the current window key, read and
written in two commands: a refund racing a window shift can land in the newer window, off by at
most that one refund.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Literal

from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.limits import GRANULARITIES, RateLimitItem, RateLimitItemPerSecond

from .store import LocalStorage

__all__ = [
    "BucketMeter",
    "Hold",
    "Kind",
    "Meter",
    "Stats",
    "TokenMeter",
    "WindowMeter",
    "bucket_meter",
    "rate_items",
    "sliding_wait",
]

Kind = Literal["requests", "tokens"]
STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


class Stats:
    """Where one meter stands for one identity, in the terms the response headers use."""

    __slots__ = ("kind", "limit", "remaining", "reset_in", "window")

    def __init__(self, kind: Kind, limit: int, remaining: int, reset_in: float, window: float):
        self.kind = kind
        self.limit = limit
        self.remaining = remaining
        self.reset_in = max(0.0, reset_in)
        self.window = window

    def __repr__(self) -> str:
        return (
            f"Stats({self.kind}, limit={self.limit}, remaining={self.remaining},"
            f" reset_in={self.reset_in:.3f})"
        )


class Hold:
    """Units taken from one meter for one identity; ``mark`` locates them for a refund."""

    __slots__ = ("cost", "ident", "mark", "meter")

    def __init__(self, meter: Meter, ident: str, cost: int, mark: int) -> None:
        self.meter = meter
        self.ident = ident
        self.cost = cost
        self.mark = mark


class Meter:
    """Base: ``label`` names the config field (``limits[0].tokens``) in errors and metrics."""

    kind: Kind
    label: str
    limit: int
    window: float

    async def take(self, ident: str, cost: int) -> Hold | None:
        raise NotImplementedError

    async def stats(self, ident: str) -> Stats:
        raise NotImplementedError

    def peek(self, ident: str) -> Stats | None:
        """Stats without suspending, when the storage is in process (else ``None``)."""
        return None

    async def wait(self, ident: str, cost: int) -> float:
        """Seconds until ``cost`` would fit (the Retry-After of a refusal)."""
        raise NotImplementedError

    async def adjust(self, hold: Hold, delta: int) -> None:
        """Correct a hold by ``delta`` units (where the strategy can; others ignore it)."""

    async def undo(self, hold: Hold) -> None:
        """Give back what ``hold`` took (the request was refused elsewhere)."""
        await self.adjust(hold, -hold.cost)


def rate_items(rate_items: tuple[tuple[int, int, str], ...], namespace: str) -> list[RateLimitItem]:
    """`limits` items for a parsed :class:`~tidegate.config.types.Rate`, one per ``;`` part."""
    return [
        GRANULARITIES[unit](amount, multiples, namespace=namespace)
        for amount, multiples, unit in rate_items
    ]


class WindowMeter(Meter):
    """A windowed rate through one of `limits`' strategies."""

    def __init__(
        self, storage: Storage, strategy: str, item: RateLimitItem, *, kind: Kind, label: str
    ) -> None:
        self.storage = storage
        self.strategy = strategy
        self.limiter = STRATEGIES[strategy](storage)
        self.item = item
        self.kind = kind
        self.label = label
        self.limit = item.amount
        self.expiry = item.get_expiry()
        self.window = float(self.expiry)
        self._local = storage if isinstance(storage, LocalStorage) else None
        self._now = storage.clock if isinstance(storage, LocalStorage) else time.time
        # item.key_for(ident), precomputed around the identity (a test pins the equality).
        self._prefix = f"{item.namespace}/"
        self._suffix = f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}"

    def key(self, ident: str) -> str:
        return self._prefix + ident + self._suffix

    async def take(self, ident: str, cost: int) -> Hold | None:
        if await self.limiter.hit(self.item, ident, cost=cost):
            local = self._local
            mark = 0
            if local is not None and self.strategy == "sliding-window-counter":
                mark = local.sliding_window_mark(self.expiry)
            return Hold(self, ident, cost, mark)
        if self.strategy == "fixed-window":
            # Best effort: failing to take a refused hit back must not turn the refusal into a pass.
            with contextlib.suppress(Exception):
                await self.storage.incr(self.key(ident), self.expiry, -cost)
        return None

    async def undo(self, hold: Hold) -> None:
        if self.strategy == "fixed-window":
            await self.storage.incr(self.key(hold.ident), self.expiry, -hold.cost)
        elif self.strategy == "sliding-window-counter":
            await self.adjust(hold, -hold.cost)
        elif self._local is not None:
            self._local.remove_moving(self.key(hold.ident), hold.cost)

    async def adjust(self, hold: Hold, delta: int) -> None:
        if delta == 0 or self.strategy != "sliding-window-counter":
            return
        key = self.key(hold.ident)
        expiry = self.expiry
        if self._local is not None:
            self._local.adjust_sliding_window(key, expiry, delta, hold.mark)
            return
        # limits' Redis storage keeps the current window under "{key}" (see module docstring).
        current = "{" + key + "}"
        if delta > 0:
            await self.storage.incr(current, 2 * expiry, delta)
            return
        refund = min(-delta, await self.storage.get(current))
        if refund > 0:
            await self.storage.incr(current, 2 * expiry, -refund)

    async def _read(self, key: str) -> tuple[float, ...]:
        storage = self.storage
        if self.strategy == "moving-window":
            return await storage.get_moving_window(key, self.limit, self.expiry)  # type: ignore[attr-defined,no-any-return]
        if self.strategy == "fixed-window":
            return await storage.get(key), await storage.get_expiry(key)
        return await storage.get_sliding_window(key, self.expiry)  # type: ignore[attr-defined,no-any-return]

    def _read_local(self, local: LocalStorage, key: str) -> tuple[float, ...]:
        if self.strategy == "moving-window":
            return local.moving_window(key, self.expiry)
        if self.strategy == "fixed-window":
            return local.counter(key)
        return local.sliding_window(key, self.expiry)

    def _stats(self, data: tuple[float, ...], now: float) -> Stats:
        # Same meaning as `limits`' get_window_stats, computed on our clock.
        amount, expiry = self.limit, self.expiry
        if self.strategy == "moving-window":
            start, count = data
            reset = start + expiry - now if count else 0.0
            return Stats(self.kind, amount, max(0, amount - int(count)), reset, self.window)
        if self.strategy == "fixed-window":
            count, expires_at = data
            reset = expires_at - now if count else 0.0
            return Stats(self.kind, amount, max(0, amount - int(count)), reset, self.window)
        prev, prev_ttl, cur, cur_ttl = data
        weighted = prev * prev_ttl / expiry + cur
        reset = math.inf
        if prev:
            reset = prev_ttl % (expiry / prev)
        if cur:
            reset = min(reset, cur_ttl % expiry)
        reset = 0.0 if reset == math.inf else reset
        return Stats(self.kind, amount, max(0, amount - math.floor(weighted)), reset, self.window)

    def _wait(self, data: tuple[float, ...], now: float, cost: int) -> float:
        if self.strategy == "moving-window":
            start, count = data
            return max(0.0, start + self.expiry - now) if count else 0.0
        if self.strategy == "fixed-window":
            return max(0.0, data[1] - now)
        prev, prev_ttl, cur, cur_ttl = data
        return sliding_wait(
            int(prev), prev_ttl, int(cur), cur_ttl, expiry=self.expiry, limit=self.limit, cost=cost
        )

    async def stats(self, ident: str) -> Stats:
        return self._stats(await self._read(self.key(ident)), self._now())

    def peek(self, ident: str) -> Stats | None:
        if self._local is None:
            return None
        return self._stats(self._read_local(self._local, self.key(ident)), self._now())

    async def wait(self, ident: str, cost: int) -> float:
        return self._wait(await self._read(self.key(ident)), self._now(), cost)


class TokenMeter(WindowMeter):
    """A token budget: a sliding-window counter whose reservations reconcile."""

    def __init__(self, storage: Storage, item: RateLimitItem, *, label: str, kind: Kind = "tokens"):
        super().__init__(storage, "sliding-window-counter", item, kind=kind, label=label)

    async def take(self, ident: str, cost: int) -> Hold | None:
        # A request larger than the whole budget may still run alone in an empty window.
        return await super().take(ident, min(cost, self.limit))


class BucketMeter(Meter):
    """Exact token bucket (GCRA) in :class:`LocalStorage`."""

    def __init__(
        self, storage: LocalStorage, capacity: int, rate: float, *, namespace: str, kind: Kind,
        label: str,
    ) -> None:  # fmt: skip
        self.storage = storage
        self.capacity = capacity
        self.rate = rate
        self.kind = kind
        self.label = label
        self.limit = capacity
        self.window = capacity / rate
        self._prefix = f"{namespace}/"
        self._suffix = f"/bucket/{capacity}/{rate!r}"

    async def take(self, ident: str, cost: int) -> Hold | None:
        cost = min(cost, self.capacity)
        key = self._prefix + ident + self._suffix
        if self.storage.acquire_bucket(key, self.capacity, self.rate, cost):
            return None
        return Hold(self, ident, cost, 0)

    async def stats(self, ident: str) -> Stats:
        return self.peek(ident)

    def peek(self, ident: str) -> Stats:
        remaining, full_in = self.storage.get_bucket(
            self._prefix + ident + self._suffix, self.capacity, self.rate
        )
        return Stats(self.kind, self.capacity, remaining, full_in, self.window)

    async def wait(self, ident: str, cost: int) -> float:
        _, full_in = self.storage.get_bucket(
            self._prefix + ident + self._suffix, self.capacity, self.rate
        )
        return max(0.0, full_in + (min(cost, self.capacity) - self.capacity) / self.rate)

    async def adjust(self, hold: Hold, delta: int) -> None:
        if delta:
            self.storage.adjust_bucket(self._prefix + hold.ident + self._suffix, self.rate, delta)


def bucket_meter(
    storage: Storage, capacity: int, rate: float, *, namespace: str, kind: Kind, label: str
) -> Meter:
    """The bucket for ``burst``: exact in process, a sliding window on shared storage."""
    if isinstance(storage, LocalStorage):
        return BucketMeter(storage, capacity, rate, namespace=namespace, kind=kind, label=label)
    seconds = max(1, math.ceil(capacity / rate))
    item = RateLimitItemPerSecond(capacity, seconds, namespace=namespace + "/bucket")
    return TokenMeter(storage, item, label=label, kind=kind)


def sliding_wait(
    prev: int, prev_ttl: float, cur: int, cur_ttl: float, *, expiry: float, limit: int, cost: int
) -> float:
    """Seconds until a sliding-window counter would admit ``cost`` more units.

    The previous window's weight decays linearly to zero at the window boundary, where the
    current window becomes the previous one and starts decaying in turn.
    """
    excess = prev * prev_ttl / expiry + cur + cost - limit
    if excess <= 0:
        return 0.0
    if prev and excess <= prev * prev_ttl / expiry:
        return excess * expiry / prev
    boundary = prev_ttl if prev else max(0.0, cur_ttl - expiry)
    excess = cur + cost - limit
    if excess <= 0:
        return boundary
    if cur and excess <= cur:
        return boundary + excess * expiry / cur
    return boundary + expiry
