"""Serve ASGI apps for tests over real sockets, in the test's loop or in a thread of their own.

The thread variant exists for sync clients (the official ``openai`` SDK's sync client blocks the
calling thread, so the server cannot share the test's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


def _config(app: Any, lifespan: str) -> uvicorn.Config:
    return uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan=lifespan, log_level="warning", access_log=False,
        loop="asyncio", http="h11", timeout_graceful_shutdown=5,
        proxy_headers=False,  # uvicorn would trust X-Forwarded-For from 127.0.0.1 by itself
    )  # fmt: skip


def _port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: Any, *, lifespan: str = "auto") -> AsyncIterator[str]:
    """Run ``app`` under uvicorn in this loop; yields its base URL."""
    server = uvicorn.Server(_config(app, lifespan))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server failed to start")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{_port(server)}"
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def serve_in_thread(make_app: Any, *, lifespan: str = "auto", cleanup: Any = None) -> Iterator[str]:
    """Run ``make_app()`` (called inside the server thread's loop) under uvicorn in a thread.

    ``cleanup`` (an async callable) runs in that loop after the server stopped.
    """
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            app = await make_app() if asyncio.iscoroutinefunction(make_app) else make_app()
            server = uvicorn.Server(_config(app, lifespan))
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            holder["server"] = server
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            holder["url"] = f"http://127.0.0.1:{_port(server)}" if server.started else None
            ready.set()
            await task
            if cleanup is not None:
                await cleanup()

        try:
            asyncio.run(main())
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(20)
    if not holder.get("url"):
        raise RuntimeError("server thread failed to start")
    try:
        yield holder["url"]
    finally:
        holder["server"].should_exit = True
        thread.join(20)
