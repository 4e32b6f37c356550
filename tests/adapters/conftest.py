from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from tidegate.providers.simulator import Simulator, SimulatorConfig


@pytest.fixture
def thread_sim() -> Iterator[Simulator]:
    """A simulator on its own loop thread, for sync (WSGI) tests that block the calling thread."""
    sim = Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sim-loop", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
