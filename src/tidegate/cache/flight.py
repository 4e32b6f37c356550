"""Single-flight: identical concurrent misses share one upstream call.

The upstream call runs in a task owned by the flight, not by whichever request came first, so
the first client hanging up does not fail the others; when *every* waiter has gone the call is
cancelled (which aborts the upstream request). A failure reaches every waiter as the same error.
Streams are recorded into a shared list and fanned out: a client joining late replays what was
already sent, then follows live. ``store`` records the answer right after the clients have
it, and hands back the rest, which runs after that, off every client's path. A lookup in
between first records the answers still waiting (:meth:`Flights.record`), so a repeat right
after an answer is a hit, as if the answer had been recorded before it went out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..errors import ShuttingDown
from .vectors import idle_turn

__all__ = ["Deferred", "Flights", "Store"]

Produce = Callable[[], Awaitable[dict[str, Any]]]
ProduceStream = Callable[[], AsyncIterator[dict[str, Any]]]
Deferred = Callable[[], Awaitable[None]]
Store = Callable[[Any, float], "Deferred | None"]
"""Records an answer (given the clock's time it arrived at) and returns what may wait longer
(embedding the question, indexing its vector)."""


class _Call:
    """One shared call; each waiter has its own future, so a waiter that goes away cancels
    only its own and the others (and the call) go on."""

    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[asyncio.Future[dict[str, Any]]] = []

    def settle(self, response: dict[str, Any] | None, error: BaseException | None) -> None:
        waiters, self.waiters = self.waiters, []
        for future in waiters:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                assert response is not None
                future.set_result(response)


class _Record:
    """An answer that reached its clients and is not in the cache yet."""

    __slots__ = ("answer", "at", "done", "later", "store")

    def __init__(self, store: Store, answer: Any, at: float) -> None:
        self.store = store
        self.answer = answer
        self.at = at
        self.done = False
        self.later: Deferred | None = None

    def run(self) -> Deferred | None:
        if not self.done:
            self.done = True
            self.later = self.store(self.answer, self.at)
        return self.later


class _Stream:
    __slots__ = ("chunks", "done", "error", "signal", "task", "waiters")

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.done = False
        self.error: BaseException | None = None
        self.signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.waiters = 0

    def notify(self) -> None:
        signal, self.signal = self.signal, asyncio.get_running_loop().create_future()
        signal.set_result(None)


class Flights:
    """In-flight upstream calls by key; owned by one cache, closed with it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[bytes, _Call] = {}
        self._streams: dict[bytes, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unrecorded: dict[_Record, None] = {}

    def __len__(self) -> int:
        return len(self._calls) + len(self._streams)

    def busy(self, key: bytes) -> bool:
        """Whether a call or stream for ``key`` is in flight (joining it would collapse)."""
        return key in self._calls or key in self._streams

    def record(self) -> None:
        """Record every answer that went out and is not stored yet (before a lookup)."""
        if self._unrecorded:
            for pending in list(self._unrecorded):
                pending.run()

    async def _record(self, store: Store, answer: Any) -> Deferred | None:
        # The clients resume on the next loop turn and may step aside on their way to sending
        # the answer: waiting for a turn with nothing else to run puts this task behind all of
        # that, so recording the answer (~0.05 ms on the request path) never delays it.
        pending = _Record(store, answer, self._clock())
        self._unrecorded[pending] = None
        try:
            await idle_turn()
            return pending.run()
        finally:
            del self._unrecorded[pending]

    # -- blocking -----------------------------------------------------------------------------

    async def call(self, key: bytes, produce: Produce, store: Store) -> tuple[dict[str, Any], bool]:
        """The response of ``produce`` and whether this caller joined someone else's call."""
        call = self._calls.get(key)
        collapsed = call is not None
        if call is None:
            call = self._calls[key] = _Call()
            call.task = self._spawn(self._run_call(key, call, produce, store))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        call.waiters.append(future)
        try:
            return await future, collapsed
        except asyncio.CancelledError:
            if future in call.waiters:
                call.waiters.remove(future)
            if not call.waiters and call.task is not None and not call.task.done():
                call.task.cancel()
            raise

    async def _run_call(self, key: bytes, call: _Call, produce: Produce, store: Store) -> None:
        try:
            response = await produce()
        except asyncio.CancelledError:
            # Cancelled with waiters left only when the cache closes under them.
            call.settle(None, _closed())
            raise
        except BaseException as exc:
            call.settle(None, exc)
            return
        finally:
            if self._calls.get(key) is call:
                del self._calls[key]
        call.settle(response, None)
        later = await self._record(store, response)
        if later is not None:
            await later()

    # -- streams ------------------------------------------------------------------------------

    def stream(
        self, key: bytes, produce: ProduceStream, store: Store
    ) -> tuple[AsyncIterator[dict[str, Any]], bool]:
        """An iterator over the shared stream and whether this caller joined an existing one."""
        flight = self._streams.get(key)
        collapsed = flight is not None
        if flight is None:
            flight = self._streams[key] = _Stream()
            flight.task = self._spawn(self._pump(key, flight, produce, store))
        flight.waiters += 1
        return self._follow(flight), collapsed

    async def _pump(self, key: bytes, flight: _Stream, produce: ProduceStream, store: Store) -> None:
        stream = produce()
        try:
            async for chunk in stream:
                flight.chunks.append(chunk)
                flight.notify()
            flight.done = True
        except asyncio.CancelledError:
            flight.error = _closed()
            raise
        except BaseException as exc:
            flight.error = exc
        finally:
            if self._streams.get(key) is flight:
                del self._streams[key]
            flight.notify()
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if flight.done:
            later = await self._record(store, flight.chunks)  # behind the followers just woken
            if later is not None:
                await later()

    async def _follow(self, flight: _Stream) -> AsyncIterator[dict[str, Any]]:
        position = 0
        try:
            while True:
                chunks = flight.chunks
                while position < len(chunks):
                    yield chunks[position]
                    position += 1
                if flight.error is not None:
                    raise flight.error
                if flight.done:
                    return
                await asyncio.shield(flight.signal)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done and flight.task is not None:
                flight.task.cancel()

    # -- lifecycle ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait until no shared call or stream, nor what it stores afterwards, is running."""
        while self._tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in list(self._tasks)), return_exceptions=True)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._calls.clear()
        self._streams.clear()


def _closed() -> ShuttingDown:
    return ShuttingDown("the response cache closed before the shared upstream call finished")
