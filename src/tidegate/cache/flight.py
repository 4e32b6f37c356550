"""Single-flight: identical concurrent misses share one upstream call.

The upstream call runs in a task owned by the flight, not by whichever request came first, so
the first client hanging up does not fail the others; when *every* waiter has gone the call is
cancelled (which aborts the upstream request). A failure reaches every waiter as the same error.
Streams are recorded into a shared list and fanned out: a client joining late replays what was
already sent, then follows live. ``store`` records the answer before the clients get it (cheap:
dict inserts) and hands back the rest, which runs in the flight's task after them, off every
client's path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..errors import ShuttingDown

__all__ = ["Deferred", "Flights", "Store"]

Produce = Callable[[], Awaitable[dict[str, Any]]]
ProduceStream = Callable[[], AsyncIterator[dict[str, Any]]]
Deferred = Callable[[], Awaitable[None]]
Store = Callable[[Any], "Deferred | None"]
"""Records an answer at once (so a repeat right after it hits) and returns what may wait until
every client has it (embedding the question, indexing its vector)."""


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

    def __init__(self) -> None:
        self._calls: dict[bytes, _Call] = {}
        self._streams: dict[bytes, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._calls) + len(self._streams)

    def busy(self, key: bytes) -> bool:
        """Whether a call or stream for ``key`` is in flight (joining it would collapse)."""
        return key in self._calls or key in self._streams

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
        later = store(response)
        call.settle(response, None)
        if later is not None:
            # The waiters resume on the next loop turn; stepping aside once puts this task
            # behind them, so the vector work never delays an answer.
            await asyncio.sleep(0)
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
            later = store(flight.chunks)
            if later is not None:
                await asyncio.sleep(0)  # behind the followers woken by the last notify()
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
