"""Fair turns: a cap on how much request work one event-loop turn runs.

asyncio runs every callback that is ready when a turn begins before it polls for I/O again. When
200 upstream answers land together (agent sessions in lockstep, a burst of identical traffic),
every task they wake runs in the same turn, ~100-400 µs each, and the loop is deaf for tens of
milliseconds: timers fire late, a cache hit or a host route that arrived meanwhile waits for all
of them. :class:`TurnBudget` spreads such a burst over several turns instead. Request work calls
``await budget.pace()`` at the points where a burst starts (a gateway call begins, an upstream
answer arrives); once the work paced in this turn has run ``budget`` seconds, later callers wait,
in arrival order, for following turns, and I/O and timers get their turn in between.

Nothing waits when the loop is not busy: the first caller of a turn always goes through, and a
caller only waits when this turn already ran ``budget`` of paced work or others are waiting.
The total work is unchanged, so throughput is too; a burst's last task finishes about when it
would have, while everything else on the loop stops queueing behind the whole burst.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

__all__ = ["TurnBudget"]

_MAX_RELEASE = 256


class TurnBudget:
    """Per event loop (one per Gateway); ``budget`` is seconds of paced work per loop turn."""

    def __init__(self, budget: float = 0.001) -> None:
        if budget <= 0:
            raise ValueError(f"Expected a budget > 0 seconds, got `{budget}`")
        self.budget = budget
        self._started: float | None = None  # when this turn's first paced work began
        self._admitted = 0  # paced callers that went through this turn
        self._cost = budget / 8  # estimated seconds of work one caller runs (EWMA)
        self._tickets = itertools.count()  # arrival order
        self._queue: list[tuple[int, asyncio.Future[None]]] = []  # a heap by ticket
        self._released = 0  # let through, not yet running: still ahead of any newcomer
        self._marked = False  # a callback at the start of the next turn is scheduled
        self.deferred = 0
        """Callers that had to wait for a later turn (tests and metrics read it)."""

    @property
    def waiting(self) -> int:
        return sum(1 for _, future in self._queue if not future.done())

    async def pace(self) -> None:
        """Return at once if this turn has room for more work, else in a later turn."""
        if self._head() is None and not self._released and self._room(time.perf_counter()):
            return
        self.deferred += 1
        await self._wait(next(self._tickets))

    def _room(self, now: float) -> bool:
        """Count one more caller into this turn if it has room."""
        if self._started is None:
            self._started = now
            self._admitted = 1
            self._mark()
            return True
        if now - self._started >= self.budget:
            return False
        self._admitted += 1
        return True

    def _head(self) -> int | None:
        """The earliest ticket still waiting (cancelled waiters are dropped here, lazily)."""
        queue = self._queue
        while queue and queue[0][1].done():
            heapq.heappop(queue)
        return queue[0][0] if queue else None

    async def _wait(self, ticket: int) -> None:
        while True:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._queue, (ticket, future))
            self._mark()
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._released -= 1
                    self._release(1)  # we were let through but leave: pass the turn on
                raise
            self._released -= 1
            # Let through: go unless someone who came earlier waits again, or the turn filled
            # up meanwhile; then back in line, where our ticket keeps our place.
            head = self._head()
            if (head is None or head > ticket) and self._room(time.perf_counter()):
                return

    def _mark(self) -> None:
        if not self._marked:
            self._marked = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        """Runs early in the next turn: close the last turn's books, let the next waiters go."""
        self._marked = False
        started, admitted = self._started, self._admitted
        if started is not None and admitted:
            per = (time.perf_counter() - started) / admitted
            self._cost += 0.2 * (per - self._cost)
        self._started = None
        self._admitted = 0
        if self._head() is not None:
            self._release(max(1, min(_MAX_RELEASE, int(self.budget / max(self._cost, 1e-6)))))
            self._mark()  # keep turning while anyone waits

    def _release(self, count: int) -> None:
        while count and self._head() is not None:
            _, future = heapq.heappop(self._queue)
            future.set_result(None)
            self._released += 1
            count -= 1
