"""Tools the agent tests configure by reference (``agent.agent_support:NAME``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

from tidegate.agent import ToolContext

CALLS: list[tuple[str, object]] = []
_lock = threading.Lock()


def order_status(order_id: int, verbose: bool = False) -> str:
    """Look up where an order is.

    Args:
        order_id: The order number on the receipt.
        verbose: Include every tracking event.
    """
    with _lock:
        CALLS.append(("order_status", threading.current_thread().name))
    return f"order {order_id} shipped"


async def weather(city: str, units: Literal["metric", "imperial"] = "metric") -> dict[str, object]:
    """Current weather in a city.

    :param city: City name, e.g. Oslo.
    :param units: Unit system of the temperature.
    """
    CALLS.append(("weather", city))
    return {"city": city, "sky": "sunny", "units": units}


async def slow(seconds: float = 5.0) -> str:
    """Waits a long time."""
    await asyncio.sleep(seconds)
    return "finally"


def broken(reason: str = "boom") -> str:
    """Always fails."""
    raise RuntimeError(f"backend exploded: {reason}")


async def nap(ms: int = 100) -> str:
    """Sleeps ``ms`` milliseconds without blocking the loop."""
    await asyncio.sleep(ms / 1000)
    return f"slept {ms}ms"


def whoami(ctx: ToolContext, note: str = "") -> str:
    """Tells who the call is made for."""
    return f"tenant={ctx.tenant} user={ctx.user} note={note}"


def blocking_sleep(ms: int = 50) -> str:
    """Blocks its thread (must run on the worker pool)."""
    time.sleep(ms / 1000)
    return threading.current_thread().name


class Flaky:
    """Fails ``failures`` times, then answers (to see retries)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self, x: int = 0) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"attempt {self.calls} failed")
        return f"ok after {self.calls}"


NOT_CALLABLE = 42
