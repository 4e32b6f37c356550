"""The one seam through which blocking or CPU-heavy work leaves the event loop.

Embedding, index builds and sync tool calls go through :func:`run_sync` so they land on a bounded
pool instead of the loop's default executor (which grows with cores and is shared with DNS). The
pool belongs to the Gateway that creates it; nothing here is global.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["WorkerPool"]

P = ParamSpec("P")
T = TypeVar("T")


class WorkerPool:
    """A bounded thread pool with an async ``run`` that keeps contextvars."""

    def __init__(self, max_workers: int = 4, *, name: str = "tidegate-worker") -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self.max_workers = max_workers

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def shutdown(self, *, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
