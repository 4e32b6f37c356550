"""Shared helpers of the admission tests: config building, a settable clock, a running Admission."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry

from tidegate.admission import Admission, RequestInfo
from tidegate.config.admission import AdmissionSection, validate_admission
from tidegate.config.loader import convert_section

T0 = 1_800_000_000.0  # a round epoch second, so fixed windows start at known times


class FakeClock:
    """Wall-clock seconds that only move when told to."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def section(**data: Any) -> AdmissionSection:
    """Build and validate the admission keys the way the loader does (fails on any issue)."""
    cfg = convert_section(data, AdmissionSection, "$")
    issues = validate_admission(cfg)
    assert issues == [], issues
    return cfg


@contextlib.asynccontextmanager
async def running(
    *, clock: FakeClock | None = None, registry: CollectorRegistry | None = None, **data: Any
) -> AsyncIterator[Admission]:
    kwargs: dict[str, Any] = {"registry": registry or CollectorRegistry()}
    if clock is not None:
        kwargs["clock"] = clock
    admission = Admission(section(**data), **kwargs)
    await admission.start()
    try:
        yield admission
    finally:
        await admission.close()
    await asyncio.sleep(0)  # let closed connections' callbacks run
    leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"tasks left running after close(): {leaked}"


def info(**fields: Any) -> RequestInfo:
    fields.setdefault("client_ip", "198.51.100.7")
    return RequestInfo(**fields)


async def admitted(admission: Admission, request: RequestInfo) -> bool:
    """Admit and release at once; False when a limit refused."""
    from tidegate.errors import Overloaded, RateLimited

    try:
        ticket = await admission.admit(request)
    except (RateLimited, Overloaded):
        return False
    ticket.release()
    return True


def sample(admission: Admission, name: str, **labels: str) -> float:
    value = admission.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
