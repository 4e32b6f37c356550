"""Concurrency caps with a bounded, prioritised wait queue and early shedding.

A :class:`Gate` lets ``limit`` requests run at once; up to ``queue`` more wait in priority order
(FIFO within a priority). A request is shed at once — never parked — when the queue is full, or
when the expected wait (queue position × mean hold time ÷ limit) would outlast its deadline; a
waiter that reaches ``queue_timeout`` (or its deadline) is shed then. Every wait is thus bounded.

A freed slot is handed straight to the next waiter (``inflight`` never dips), so a newcomer can't
overtake the queue. Timeouts are timer callbacks that resolve the waiter's future, not task
cancellation, so "got the slot" and "timed out" can never both happen to one waiter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import OrderedDict
from typing import Literal

from ..config.admission import AdaptiveConfig
from .adaptive import GradientLimit

__all__ = ["Gate", "GatePool", "Shed"]

ShedReason = Literal["queue_full", "deadline", "timeout", "closed"]
_HOLD_ALPHA = 0.1
_MAX_LEARNED = 1024


class Shed(Exception):
    """Internal: the gate refused; the caller turns it into ``Overloaded``/``ShuttingDown``."""

    def __init__(self, reason: ShedReason, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class GateObserver:
    """Metric hooks of one rule (no-ops here; :mod:`.metrics` provides the real ones)."""

    def queued(self, delta: int) -> None: ...
    def inflight(self, delta: int) -> None: ...
    def waited(self, seconds: float) -> None: ...
    def limit(self, value: int) -> None: ...


class Gate:
    """One cap (a rule × identity). Single event loop; no method but ``enter`` suspends."""

    __slots__ = (
        "_dead", "_heap", "_pool", "_queued", "_seq", "adaptive", "hold", "inflight", "key", "limit",
        "observer", "queue_max", "queue_timeout",
    )  # fmt: skip

    def __init__(
        self,
        limit: int,
        *,
        queue: int = 0,
        queue_timeout: float = 5.0,
        adaptive: GradientLimit | None = None,
        observer: GateObserver | None = None,
        pool: GatePool | None = None,
        key: str = "",
    ) -> None:
        self.limit = adaptive.current if adaptive is not None else limit
        self.queue_max = queue
        self.queue_timeout = queue_timeout
        self.adaptive = adaptive
        self.observer = observer or GateObserver()
        self.inflight = 0
        self.hold = 0.0  # EMA of how long a slot is held, for wait estimates
        self._heap: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._queued = 0
        self._dead = 0
        self._seq = itertools.count().__next__
        self._pool = pool
        self.key = key

    @property
    def queued(self) -> int:
        return self._queued

    def try_enter(self) -> bool:
        if self.inflight < self.limit and not self._queued:
            self.inflight += 1
            self.observer.inflight(1)
            return True
        return False

    def expected_wait(self, position: int) -> float:
        """Seconds a waiter at ``position`` (1 = next) should expect, from the mean hold time."""
        return self.hold * position / max(1, self.limit)

    async def enter(self, *, priority: int = 0, budget: float | None = None) -> float:
        """Take a slot, waiting in the queue if allowed; returns seconds waited.

        ``budget`` is what is left of the request's deadline (``None``: no deadline).
        """
        if self.try_enter():
            return 0.0
        position = self._queued + 1
        estimate = self.expected_wait(position)
        if self._queued >= self.queue_max:
            raise Shed("queue_full", max(estimate, self.expected_wait(1)))
        wait_for = self.queue_timeout
        cut_by_deadline = False
        if budget is not None:
            if budget <= 0 or estimate > budget:
                raise Shed("deadline", estimate)
            cut_by_deadline = budget < wait_for
            wait_for = min(wait_for, budget)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._heap, (-priority, self._seq(), future))
        self._queued += 1
        self.observer.queued(1)
        timer = loop.call_later(wait_for, self._expire, future)
        started = loop.time()
        try:
            granted = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result():
                self.leave(None)  # the slot arrived as we were cancelled: pass it on
            else:
                self._forget()
            raise
        finally:
            timer.cancel()
        waited = loop.time() - started
        self.observer.waited(waited)
        if not granted:
            reason: ShedReason = "deadline" if cut_by_deadline else "timeout"
            if self._pool is not None and self._pool.closed:
                reason = "closed"
            raise Shed(reason, self.expected_wait(max(1, self._queued)))
        return waited

    def _expire(self, future: asyncio.Future[bool]) -> None:
        if not future.done():
            future.set_result(False)
            self._forget()

    def _forget(self) -> None:
        """A waiter left without a slot; its heap entry stays until popped (lazy deletion)."""
        self._queued -= 1
        self._dead += 1
        self.observer.queued(-1)
        if self._dead > 32 and self._dead > self._queued:
            self._heap = [entry for entry in self._heap if not entry[2].done()]
            heapq.heapify(self._heap)
            self._dead = 0
        self._maybe_idle()

    def leave(self, held: float | None, *, failed: bool = False) -> None:
        """Free a slot; ``held`` is how long it was used (``None``: no signal, e.g. cancelled)."""
        if held is not None:
            self.hold += (held - self.hold) * _HOLD_ALPHA if self.hold else held
            if self.adaptive is not None:
                self.set_limit(self.adaptive.observe(held, self.inflight, failed=failed))
        self.inflight -= 1
        self.observer.inflight(-1)
        self._wake()
        self._maybe_idle()

    def set_limit(self, limit: int) -> None:
        if limit != self.limit:
            self.limit = limit
            self.observer.limit(limit)
            self._wake()

    def _wake(self) -> None:
        heap = self._heap
        while heap and self.inflight < self.limit:
            _, _, future = heapq.heappop(heap)
            if future.done():
                self._dead -= 1
                continue
            self._queued -= 1
            self.observer.queued(-1)
            self.inflight += 1
            self.observer.inflight(1)
            future.set_result(True)

    def close(self) -> None:
        """Resolve every waiter as refused; running requests keep their slots."""
        for _, _, future in self._heap:
            if not future.done():
                future.set_result(False)
                self._queued -= 1
                self.observer.queued(-1)
        self._heap.clear()
        self._dead = 0

    def _maybe_idle(self) -> None:
        if self._pool is not None and self.inflight == 0 and self._queued == 0:
            self._pool.idle(self)


class GatePool:
    """The gates of one rule, one per identity, created on demand and dropped when idle.

    What a gate learned — its mean hold time and adaptive limit — outlives it (kept for the last
    ``1024`` idle identities), so a quiet moment doesn't throw away what was learned upstream.
    """

    def __init__(
        self,
        limit: int | Literal["auto"],
        *,
        queue: int,
        queue_timeout: float,
        adaptive: AdaptiveConfig | None,
        observer: GateObserver | None = None,
    ) -> None:
        self.static = limit if isinstance(limit, int) else None
        self.adaptive_cfg = adaptive if limit == "auto" else None
        if limit == "auto" and self.adaptive_cfg is None:
            self.adaptive_cfg = AdaptiveConfig()
        self.queue = queue
        self.queue_timeout = queue_timeout
        self.observer = observer or GateObserver()
        self.gates: dict[str, Gate] = {}
        self._learned: OrderedDict[str, tuple[float, GradientLimit | None]] = OrderedDict()
        self.closed = False

    def gate(self, key: str) -> Gate:
        gate = self.gates.get(key)
        if gate is None:
            hold, adaptive = self._learned.pop(key, (0.0, None))
            if adaptive is None and self.adaptive_cfg is not None:
                adaptive = GradientLimit(self.adaptive_cfg)
            gate = Gate(
                self.static or 1,
                queue=self.queue,
                queue_timeout=self.queue_timeout,
                adaptive=adaptive,
                observer=self.observer,
                pool=self,
                key=key,
            )
            gate.hold = hold
            if adaptive is not None:
                self.observer.limit(gate.limit)
            self.gates[key] = gate
        return gate

    def idle(self, gate: Gate) -> None:
        if self.gates.get(gate.key) is gate:
            del self.gates[gate.key]
            if gate.hold or gate.adaptive is not None:
                self._learned[gate.key] = (gate.hold, gate.adaptive)
                while len(self._learned) > _MAX_LEARNED:
                    self._learned.popitem(last=False)

    def close(self) -> None:
        self.closed = True
        for gate in list(self.gates.values()):
            gate.close()
