from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tidegate.providers.simulator import Simulator, SimulatorConfig


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A fresh LLM simulator on a free port with no artificial latency."""
    async with Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0)) as simulator:
        yield simulator


@pytest.fixture
def no_leaked_tasks() -> object:
    """Fails a test that leaves tasks of its own running after it ends."""
    return _assert_no_tasks


async def _assert_no_tasks(grace: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    current = asyncio.current_task()
    while True:
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert not pending, f"tasks left running: {pending}"
