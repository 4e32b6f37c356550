"""What admission hands back: the request description it reads and the ticket it returns."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType

import msgspec
from limits.errors import StorageError

from ..errors import UpstreamError
from .gate import Gate
from .headers import success_headers
from .meters import Hold, Meter, Stats
from .metrics import AdmissionMetrics

__all__ = ["STORAGE_ERRORS", "RequestInfo", "Ticket"]

STORAGE_ERRORS = (StorageError, OSError, TimeoutError)
"""What a shared storage raises when it is unreachable or slow (limits wraps client errors)."""


class RequestInfo(msgspec.Struct, kw_only=True):
    """What admission needs to know about a request; built by the surface or the middleware.

    ``client_ip`` is the socket peer (``scope["client"][0]``); forwarded headers are applied
    here, only from trusted proxies. ``headers`` has lower-case names. ``deadline`` is absolute,
    on the event loop's clock (``loop.time() + timeout``, what ``asyncio.timeout_at`` takes).
    """

    surface: str = "openai"
    path: str = "/"
    model: str | None = None
    workflow: str | None = None
    client_ip: str | None = None
    api_key_name: str | None = None
    user: str | None = None
    tenant: str | None = None
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)
    est_tokens: int = 0
    deadline: float | None = None
    priority: int | None = None


class Ticket:
    """An admitted request's claim on slots and token reservations."""

    __slots__ = (
        "_counted",
        "_failed",
        "_gates",
        "_holds",
        "_latency",
        "_metrics",
        "_reconciled",
        "_released",
        "_started",
        "_stats",
    )  # fmt: skip

    def __init__(
        self,
        metrics: AdmissionMetrics,
        gates: list[Gate],
        holds: list[Hold],
        counted: list[tuple[Meter, str]],
        stats: list[Stats] | None,
    ) -> None:
        self._metrics = metrics
        self._gates = gates
        self._holds = holds
        self._counted = counted
        self._stats = stats
        self._started = time.perf_counter()
        self._latency: float | None = None
        self._failed = False
        self._released = False
        self._reconciled = False

    async def __aenter__(self) -> Ticket:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if exc is None or isinstance(exc, UpstreamError):
            self.release(failed=exc is not None)
        else:
            # Cancelled or refused for another reason: how long it took says nothing upstream.
            self.release(measured=False)

    @property
    def reserved_tokens(self) -> int:
        return max((hold.cost for hold in self._holds), default=0)

    def observe(self, latency: float, *, failed: bool = False) -> None:
        """Report the upstream latency (seconds) for adaptive limits; default: the hold time."""
        self._latency = latency
        self._failed = failed

    def release(self, *, failed: bool = False, measured: bool = True) -> None:
        """Free the concurrency slots (idempotent). ``failed``: the upstream call failed."""
        if self._released:
            return
        self._released = True
        held: float | None = None
        if measured:
            held = (
                self._latency if self._latency is not None else time.perf_counter() - self._started
            )
        failed = failed or self._failed
        for gate in reversed(self._gates):
            gate.leave(held, failed=failed)

    async def reconcile(self, actual_tokens: int) -> None:
        """Replace the token estimate with the upstream's reported usage (first call wins)."""
        if self._reconciled:
            return
        self._reconciled = True
        for hold in self._holds:
            try:
                await hold.meter.adjust(hold, max(0, actual_tokens) - hold.cost)
            except STORAGE_ERRORS:
                self._metrics.storage_errors.inc()

    def headers(self, *, openai: bool = False) -> dict[str, str]:
        """``RateLimit-*`` (and, for the OpenAI surface, ``x-ratelimit-*``) for the response.

        In process the numbers are read now (no suspension); with shared storage they were
        fetched during ``admit``.
        """
        stats = self._stats
        if stats is None:
            stats = [s for meter, ident in self._counted if (s := meter.peek(ident)) is not None]
        return success_headers(stats, openai=openai)
