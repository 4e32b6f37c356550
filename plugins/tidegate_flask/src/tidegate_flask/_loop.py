"""One event loop on a thread of its own: where the Gateway lives inside a WSGI process.

Flask gives async views a fresh event loop per request, which would tear the Gateway's upstream
sessions down after every request. So the Gateway runs on one long-lived loop in a daemon thread,
and WSGI worker threads hand it coroutines (``run_coroutine_threadsafe``) and wait for the answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tidegate import ShuttingDown, UsageError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """``start()`` → ``submit()``/``call()`` from any thread → ``stop()`` (cancels what is left)."""

    def __init__(self, *, name: str = "tidegate-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._stopped = False

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise UsageError("tidegate's event-loop thread did not start within 10 s")

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._cancel_all())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; never blocks the caller."""
        if not self.alive:
            coro.close()
            raise UsageError("tidegate's event loop is not running (closed, or never started)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and wait for its result; on timeout the coroutine is cancelled."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise UsageError("A sync tidegate helper was called from the gateway's own loop; await it")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"tidegate call did not finish within {timeout} s") from None
        except concurrent.futures.CancelledError:
            raise ShuttingDown("tidegate's event loop stopped before this call finished") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task still on the loop, stop it and join the thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    @staticmethod
    async def _cancel_all() -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel("tidegate loop stopped")
        await asyncio.gather(*tasks, return_exceptions=True)
