"""The admission entry point surfaces and the middleware call for every request.

``admit`` runs the rules that apply in two phases: first every rate (requests, tokens, burst),
which answers at once — 429 with the time until the rate allows it — then the concurrency caps,
which may queue within bounds or shed with 503. Rates go first so an abusive client is refused
before it takes a queue place from well-behaved ones. A request refused at any point consumes
nothing: the units it took from other rates (and its token reservation) are given back, so a
request refused by a per-minute budget doesn't also eat its per-second one.

The returned :class:`Ticket` holds the slots and reservations until released: use it as
``async with ticket:`` around the upstream work, call ``await ticket.reconcile(usage)`` when the
upstream reports usage, and put ``ticket.headers()`` on the response.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from typing import Literal

from limits.aio.storage import Storage
from limits.errors import ConfigurationError
from prometheus_client import CollectorRegistry

from ..config.admission import AdmissionSource
from ..errors import ConfigError, Overloaded, RateLimited, ShuttingDown, UpstreamError, UsageError
from .estimate import estimate_chat_tokens
from .gate import Gate, Shed
from .identity import ClientIdentity
from .meters import Hold, Meter, Stats
from .metrics import AdmissionMetrics
from .rules import CompiledRule, gate_order
from .store import LocalStorage
from .ticket import STORAGE_ERRORS, RequestInfo, Ticket

__all__ = ["Admission", "RequestInfo", "Ticket"]


_State = Literal["unopened", "open", "closed"]


class Admission:
    """Admission control of one Gateway: rules compiled at construction, storage opened at start.

    ``registry`` receives the metrics (a private one when omitted; never the global registry).
    ``clock`` is wall-clock seconds for windows, buckets and ``reset_at`` (tests pass a fake one);
    request deadlines are on the event loop's clock, like ``asyncio.timeout_at``.
    ``storage`` overrides ``admission.storage`` with a ready `limits` async storage.
    """

    def __init__(
        self,
        cfg: AdmissionSource,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings = cfg.admission
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = AdmissionMetrics(self.registry)
        self.identity = ClientIdentity(settings.trusted_proxies)
        self._priority_header = (settings.priority_header or "").lower()
        self._tenant_priority = dict(settings.tenant_priority)
        compiled: dict[str, list[CompiledRule]] = {"limits": [], "protect": []}
        for section, rules in (("limits", cfg.limits), ("protect", cfg.protect)):
            for index, rule in enumerate(rules):
                label = rule.name or f"{section}[{index}]"
                compiled[section].append(CompiledRule(rule, label, self.metrics.rule(label)))
        self._limits = tuple(sorted(compiled["limits"], key=gate_order))
        self._protect = tuple(sorted(compiled["protect"], key=gate_order))
        self.rules = self._limits + self._protect
        self._storage = storage
        self._own_storage = False
        self._shared = False
        self._state: _State = "unopened"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def storage(self) -> Storage | None:
        return self._storage

    async def start(self) -> None:
        if self._state != "unopened":
            raise UsageError(f"Admission.start() called on an admission that is {self._state}")
        storage = self._storage
        if storage is None:
            storage = self._open_storage()
            self._own_storage = True
        if not isinstance(storage, LocalStorage):
            try:
                async with asyncio.timeout(max(1.0, float(self.settings.storage_timeout) * 4)):
                    healthy = await storage.check()
            except STORAGE_ERRORS:
                healthy = False
            if not healthy:
                self.metrics.storage_errors.inc()
            if not healthy and not self.settings.fail_open:
                await self._close_storage(storage)
                raise UpstreamError(
                    f"Cannot reach the admission storage `{self.settings.storage}`",
                    upstream="admission-storage",
                )
        self._storage = storage
        self._shared = not isinstance(storage, LocalStorage)
        for rule in self.rules:
            rule.bind(storage, self.settings.strategy, self.settings.key_prefix)
        self._state = "open"

    def _open_storage(self) -> Storage:
        uri = self.settings.storage
        if uri.startswith("async+memory"):
            return LocalStorage(clock=self.clock)
        from limits.storage import storage_from_string

        timeout = float(self.settings.storage_timeout)
        try:
            storage = storage_from_string(
                uri, wrap_exceptions=True, stream_timeout=timeout, connect_timeout=timeout
            )
        except ConfigurationError as exc:
            raise ConfigError(
                f"Expected the Redis client for `{uri}` to be installed (pip install"
                f" 'tidegate[redis]'), got: {exc} - at `$.admission.storage`"
            ) from exc
        if not isinstance(storage, Storage):
            raise ConfigError(
                f"Expected an async storage URI (`async+…`), got `{uri}` - at `$.admission.storage`"
            )
        return storage

    async def close(self) -> None:
        """Refuse new requests, shed every queued one; running requests keep their slots."""
        if self._state == "closed":
            return
        self._state = "closed"
        for rule in self.rules:
            if rule.gate_pool is not None:
                rule.gate_pool.close()
        if self._own_storage and self._storage is not None:
            await self._close_storage(self._storage)

    @staticmethod
    async def _close_storage(storage: Storage) -> None:
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        if client is None:
            return
        aclose = getattr(client, "aclose", None)
        if aclose is not None:  # redis-py / valkey
            await aclose()
            return
        pool = getattr(client, "connection_pool", None)
        if pool is not None:  # coredis
            pool.disconnect()

    # -- request path ----------------------------------------------------------------------

    @property
    def has_limits(self) -> bool:
        """Whether any ``limits:`` rule exists (surfaces skip admission entirely when not)."""
        return bool(self._limits)

    def guards(self, path: str) -> bool:
        """Whether a ``protect:`` rule covers this host path (skip building a request if not)."""
        return any(rule.paths is not None and rule.paths.match(path) for rule in self._protect)

    def estimate_chat(self, body: Mapping[str, object]) -> int:
        return estimate_chat_tokens(body, default_max_tokens=self.settings.default_max_tokens)

    def client_ip(self, info: RequestInfo) -> str:
        return self.identity.client_ip(info.client_ip, info.headers)

    def priority(self, info: RequestInfo) -> int:
        if info.priority is not None:
            return info.priority
        if self._tenant_priority:
            found = self._tenant_priority.get(info.tenant or info.api_key_name or "")
            if found is not None:
                return found
        if self._priority_header:
            raw = info.headers.get(self._priority_header)
            if raw:
                try:
                    return int(raw)
                except ValueError:
                    return 0
        return 0

    async def admit(self, info: RequestInfo) -> Ticket:
        """Admit or refuse one request: raises ``RateLimited`` (429) or ``Overloaded`` (503)."""
        if self._state != "open":
            if self._state == "closed":
                raise ShuttingDown()
            raise UsageError("Admission.admit() called before start()")
        rules = self._protect if info.surface == "host" else self._limits
        applied: list[tuple[CompiledRule, str]] = []
        holds: list[Hold] = []
        gates: list[Gate] = []
        ip = ""
        resolved = False
        tokens = max(1, info.est_tokens)
        try:
            for rule in rules:
                if not rule.applies(info):
                    continue
                if not resolved and rule.needs_ip:
                    ip = self.identity.client_ip(info.client_ip, info.headers)
                    resolved = True
                ident = rule.ident(info, ip)
                for meter in rule.meters:
                    cost = 1 if meter.kind == "requests" else tokens
                    try:
                        hold = await meter.take(ident, cost)
                    except STORAGE_ERRORS as exc:
                        self._storage_failed(exc)
                        continue
                    if hold is None:
                        raise await self._refusal(rule, meter, ident, cost)
                    holds.append(hold)
                applied.append((rule, ident))
            for rule, ident in applied:
                pool = rule.gate_pool
                if pool is None:
                    continue
                gate = pool.gate(ident)
                if not gate.try_enter():
                    await self._wait(rule, gate, info)
                gates.append(gate)
        except BaseException:
            for gate in reversed(gates):
                gate.leave(None)
            for hold in reversed(holds):
                try:
                    await hold.meter.undo(hold)
                except STORAGE_ERRORS:
                    self.metrics.storage_errors.inc()
            raise
        counted: list[tuple[Meter, str]] = []
        headers = self.settings.headers
        for rule, ident in applied:
            rule.metrics.admitted.inc()
            if headers:
                counted.extend((meter, ident) for meter in rule.meters)
        stats: list[Stats] | None = None
        if counted and self._shared:
            stats = []
            for meter, ident in counted:
                try:
                    stats.append(await meter.stats(ident))
                except STORAGE_ERRORS:
                    self.metrics.storage_errors.inc()
        tokens_held = [hold for hold in holds if hold.meter.kind == "tokens"]
        return Ticket(self.metrics, gates, tokens_held, counted, stats)

    async def _wait(self, rule: CompiledRule, gate: Gate, info: RequestInfo) -> None:
        budget = None
        if info.deadline is not None:
            budget = info.deadline - asyncio.get_running_loop().time()
        try:
            await gate.enter(priority=self.priority(info), budget=budget)
        except Shed as shed:
            rule.metrics.shed(shed.reason)
            if shed.reason == "closed":
                raise ShuttingDown() from None
            why = {
                "queue_full": "its queue is full" if gate.queue_max else "every slot is busy",
                "deadline": "the expected wait exceeds the request's deadline",
                "timeout": "no slot freed up within the queue timeout",
            }[shed.reason]
            raise Overloaded(
                f"Server overloaded: {gate.limit} concurrent requests allowed by rule"
                f" `{rule.label}` and {why}",
                retry_after=max(1.0, shed.retry_after),
                rule=f"{rule.label}.concurrency",
            ) from None

    async def _refusal(
        self, rule: CompiledRule, meter: Meter, ident: str, cost: int
    ) -> RateLimited:
        rule.metrics.limited(meter.kind)
        try:
            stats = await meter.stats(ident)
            wait = await meter.wait(ident, cost)
        except STORAGE_ERRORS:
            stats, wait = (
                Stats(meter.kind, meter.limit, 0, meter.window, meter.window),
                meter.window,
            )
        wait = max(wait, 0.001)
        key = rule.config.key.replace("_", " ")
        return RateLimited(
            f"Rate limit reached for {meter.kind}: {meter.limit} per {_span(meter.window)} per"
            f" {key} (rule `{rule.label}`); retry in {math.ceil(wait)}s",
            limit=meter.limit,
            remaining=stats.remaining,
            reset_at=self.clock() + wait,
            retry_after=wait,
            rule=meter.label,
        )

    def _storage_failed(self, exc: BaseException) -> None:
        self.metrics.storage_errors.inc()
        if not self.settings.fail_open:
            raise Overloaded("Rate-limit storage unavailable", retry_after=1.0) from exc


def _span(seconds: float) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds:g} seconds"
