"""A bounded hand-off from the gateway's event loop (producer) to one WSGI thread (consumer).

Streams cross threads through this: the loop side ``await``s ``put`` and is suspended — never
blocking the loop — while ``maxsize`` items wait, so a slow client holds back its own stream (and,
through aiohttp's flow control, the upstream) instead of piling chunks up in memory. The thread
side blocks in ``get``. When the consumer goes away (client disconnect), ``abandon`` drops what is
queued and turns later ``put``s into no-ops so the producer can finish or be cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

__all__ = ["END", "Channel", "Drain"]

T = TypeVar("T")

END: Final = object()
"""What ``get`` returns once the producer ended and everything queued was taken."""


class Channel:
    __slots__ = ("_abandoned", "_cond", "_ended", "_error", "_items", "_loop", "_space", "maxsize")

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"Expected `maxsize` >= 1, got `{maxsize}`")
        self.maxsize = maxsize
        self._loop = loop
        self._items: deque[Any] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._space = asyncio.Event()  # loop side: "there may be room now"
        self._ended = False
        self._error: BaseException | None = None
        self._abandoned = False

    def __len__(self) -> int:
        return len(self._items)

    # -- loop side -------------------------------------------------------------------------------

    async def put(self, item: Any) -> None:
        """Queue ``item``, waiting (without blocking the loop) while the channel is full."""
        while True:
            with self._cond:
                if self._abandoned:
                    return
                if len(self._items) < self.maxsize:
                    self._items.append(item)
                    self._cond.notify()
                    return
                # Cleared under the lock: a consumer that frees a slot after this point schedules
                # `set` on the loop, which can only run once we are waiting below.
                self._space.clear()
            await self._space.wait()

    def end(self, error: BaseException | None = None) -> None:
        """No more items; ``get`` raises ``error`` (if any) once the queue is drained. Any thread."""
        with self._cond:
            if not self._ended:
                self._ended = True
                self._error = error
            self._cond.notify_all()

    # -- thread side -----------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Any:
        """The next item, ``END``, or the producer's error; ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    return END
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no response data from tidegate within {timeout} s")
                self._cond.wait(remaining)
            was_full = len(self._items) >= self.maxsize
            item = self._items.popleft()
        if was_full:
            self._wake_producer()
        return item

    def abandon(self) -> None:
        """The consumer is gone: drop queued items and release a waiting producer."""
        with self._cond:
            self._abandoned = True
            self._items.clear()
        self._wake_producer()

    def _wake_producer(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._space.set)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class Drain(Generic[T]):
    """Iterates a channel from a thread. Closing it before the end (or dropping it unstarted, which
    a plain generator would not notice) abandons the channel and calls ``on_abandon``, so the
    producer is released and can be cancelled."""

    __slots__ = ("_channel", "_done", "_on_abandon", "_timeout")

    def __init__(
        self, channel: Channel, timeout: float | None, on_abandon: Callable[[], object] | None = None
    ) -> None:
        self._channel = channel
        self._timeout = timeout
        self._on_abandon = on_abandon
        self._done = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item = self._channel.get(self._timeout)
        except BaseException:
            self.close()
            raise
        if item is END:
            self._done = True
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def finish(self) -> None:
        """The consumer saw the end by itself (nothing to abandon)."""
        self._done = True

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._channel.abandon()
        if self._on_abandon is not None:
            self._on_abandon()

    def __del__(self) -> None:
        self.close()
