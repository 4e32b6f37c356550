"""The response cache the Gateway puts in front of its upstream calls.

This is the policy side: per request it reads ``Cache-Control``, builds the scope key, applies
the route's settings and the temperature ceiling, looks the answer up in the tiers
(:mod:`tidegate.cache.tiers`), and on a miss sends the call through single-flight and stores the
answer once it has been returned (blocking) or has completed (streams). Wiring, in ``Gateway``::

    response = await cache.complete(body, ctx, lambda: self._complete_uncached(body, ctx))
    stream = cache.stream(body, ctx, lambda: self._stream_uncached(body, ctx))

``Cache-Status`` (RFC 9211), ``Age`` and ``X-Tidegate-Cache-Similarity`` are appended to
``ctx.response_headers`` before the answer, or the first chunk, is handed back. Chunk dicts of a
shared stream are shared between its clients: encode them, never mutate them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from prometheus_client import CollectorRegistry

from .._concurrency import WorkerPool
from ..config.cache import CacheConfig
from ..context import RequestContext
from ..embeddings.base import Embedder
from ..errors import ConfigError, RequestError, UsageError
from .control import cache_status, parse_directives
from .curated import curated_completion
from .entry import completion_to_chunks
from .flight import Deferred, Flights
from .keys import build_key
from .metrics import CacheMetrics
from .policy import Policies, default_threshold
from .tiers import Hit, Plan, Tiers

__all__ = ["ResponseCache"]

Produce = Callable[[], Awaitable[dict[str, Any]]]
ProduceStream = Callable[[], AsyncIterator[dict[str, Any]]]


class ResponseCache:
    """Exact + semantic TTL cache of chat answers, scoped so tenants never share entries.

    ``embedders`` maps names to embedders (the Gateway's; one left unstarted is started and
    closed here); ``pool`` is the Gateway's worker pool; ``registry`` its Prometheus registry;
    ``clock`` drives every TTL (inject a fake in tests); ``source`` is the config file, against
    whose folder a relative ``prewarm`` path resolves.
    """

    def __init__(
        self,
        config: CacheConfig,
        *,
        embedders: Mapping[str, Embedder] | None = None,
        pool: WorkerPool | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        source: str | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._source = source
        self._pool = pool
        self.metrics = CacheMetrics(registry)
        sem = config.semantic
        self.embedder: Embedder | None = None
        if sem.enabled and embedders:
            self.embedder = embedders.get(sem.embedder)
        if sem.enabled and self.embedder is None and sem.embedder != "default":
            known = ", ".join(f"`{n}`" for n in embedders or ()) or "none configured"
            raise ConfigError(
                f"Expected an embedder defined under `embeddings` ({known}), got `{sem.embedder}`"
                " - at `$.cache.semantic.embedder`"
            )
        self._owned: list[Any] = []
        self._tenant_header = config.tenant_header.lower() if config.tenant_header else None
        self._policies = Policies(config, 1.0)
        self._flights = Flights(clock)
        self._tiers: Tiers | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.state: Literal["unopened", "open", "closed"] = "unopened"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"ResponseCache is {self.state}; start() runs once")
        if self._pool is None:
            self._pool = WorkerPool(max_workers=2, name="tidegate-cache")
            self._owned.append(self._pool)
        embedder = self.embedder
        if embedder is not None and getattr(embedder, "state", "open") == "unopened":
            await embedder.start()
            self._owned.append(embedder)
        threshold = default_threshold(embedder) if embedder is not None else 1.0
        self._policies = Policies(self.config, threshold)
        self._tiers = Tiers(
            self.config, clock=self._clock, pool=self._pool, embedder=embedder, metrics=self.metrics
        )
        if self.config.prewarm:
            path = Path(self.config.prewarm).expanduser()
            if not path.is_absolute() and self._source:
                path = Path(self._source).resolve().parent / path
            await self._tiers.load_curated(path)
        self.state = "open"
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        """Cancel shared calls still running, drop every entry, release what start() took."""
        if self.state == "closed":
            return
        self.state = "closed"
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self._flights.aclose()
        if self._tiers is not None:
            await self._tiers.aclose()
        for owned in reversed(self._owned):
            if isinstance(owned, WorkerPool):
                owned.shutdown(wait=False)
            else:
                await owned.close()

    async def __aenter__(self) -> ResponseCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def tiers(self) -> Tiers:
        if self._tiers is None:
            raise UsageError(f"ResponseCache is {self.state}; call `await cache.start()` first")
        return self._tiers

    def threshold(self, route: str) -> float:
        """The similarity a semantic hit needs on ``route`` (calibrated per embedder by default)."""
        return self._policies(route).threshold

    # -- blocking -----------------------------------------------------------------------------

    async def complete(
        self, body: dict[str, Any], ctx: RequestContext | None, produce: Produce, *, route: str | None = None
    ) -> dict[str, Any]:
        """The answer to ``body``: from the cache, or from ``produce()`` (then stored)."""
        plan = self._plan(body, ctx, route)
        if plan.forward is not None or plan.key is None:
            _header(ctx, "cache-status", plan.forward or "")
            return await produce()
        tiers = self.tiers
        if not plan.directives.no_cache:
            self._flights.record()
            hit = await tiers.lookup(plan)
            if hit is not None:
                response = hit.entry.completion() if hit.entry is not None else self._curated(hit, plan)
                if response is not None:
                    self._served(hit, plan, ctx)
                    return response
        if plan.directives.only_if_cached:
            raise _not_cached(ctx)
        flight = plan.key.exact + b"c"
        collapsed = self._flights.busy(flight)
        index = _header(ctx, "cache-status", self._miss_status(plan, collapsed=collapsed))
        started = time.perf_counter()

        def store(response: dict[str, Any], at: float) -> Deferred | None:
            return self._store(plan, response, None, at)

        response, collapsed = await self._flights.call(flight, produce, store)
        if collapsed:
            response = _copy(response)  # each client gets its own dict to encode or amend
            self.metrics.collapsed.inc()
            if ctx is not None:  # waiting on someone else's upstream call is upstream time
                ctx.upstream_seconds += time.perf_counter() - started
        elif ctx is not None and index is not None and tiers.unstorable(response) is None:
            ctx.response_headers[index] = ("cache-status", self._miss_status(plan, stored=True))
        return response

    # -- streams ------------------------------------------------------------------------------

    def stream(
        self,
        body: dict[str, Any],
        ctx: RequestContext | None,
        produce_stream: ProduceStream,
        *,
        route: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks answering ``body``: replayed, shared with an identical stream, or recorded."""
        return self._stream(body, ctx, produce_stream, route)

    async def _stream(
        self, body: dict[str, Any], ctx: RequestContext | None, produce: ProduceStream, route: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        plan = self._plan(body, ctx, route)
        if plan.forward is not None or plan.key is None:
            _header(ctx, "cache-status", plan.forward or "")
            upstream = produce()
            try:
                async for chunk in upstream:
                    yield chunk
            finally:
                await _aclose(upstream)
            return
        options = body.get("stream_options")
        usage = bool(isinstance(options, dict) and options.get("include_usage"))
        if not plan.directives.no_cache:
            self._flights.record()
            hit = await self.tiers.lookup(plan)
            if hit is not None:
                chunks = hit.entry.chunks(include_usage=usage) if hit.entry is not None else None
                if hit.entry is None:
                    chunks = _without_usage(completion_to_chunks(self._curated(hit, plan)), usage)
                if chunks is not None:
                    self._served(hit, plan, ctx)
                    for chunk in chunks:
                        yield chunk
                    return
        if plan.directives.only_if_cached:
            raise _not_cached(ctx)
        flight = plan.key.exact + (b"su" if usage else b"s")
        collapsed = self._flights.busy(flight)
        _header(ctx, "cache-status", self._miss_status(plan, collapsed=collapsed))
        if collapsed:
            self.metrics.collapsed.inc()

        def store(chunks: list[dict[str, Any]], at: float) -> Deferred | None:
            return self._store(plan, None, chunks, at)

        follower, _ = self._flights.stream(flight, produce, store)
        mark = time.perf_counter()
        try:
            async for chunk in follower:
                if collapsed and ctx is not None:  # waiting on a shared upstream stream
                    ctx.upstream_seconds += time.perf_counter() - mark
                yield chunk
                mark = time.perf_counter()
        finally:
            await _aclose(follower)

    # -- decisions ----------------------------------------------------------------------------

    def _plan(self, body: dict[str, Any], ctx: RequestContext | None, route: str | None) -> Plan:
        if self.state != "open":
            raise UsageError(f"ResponseCache is {self.state}; call `await cache.start()` first")
        headers = ctx.headers if ctx is not None else {}
        directives = parse_directives(headers.get("cache-control"), headers.get("pragma"))
        model = body.get("model")
        route = route if route is not None else str(model or "")
        policy = self._policies(route)
        tenant = ctx.tenant if ctx is not None else None
        if tenant is None and self._tenant_header:
            tenant = headers.get(self._tenant_header)
        enabled = self.config.enabled and policy.enabled
        key = build_key(body, tenant=tenant, route=route) if enabled else None
        plan = Plan(key, policy, directives, model)
        sem = self.config.semantic
        if not enabled:
            plan.forward = cache_status(fwd="bypass", detail="disabled")
        elif key is None:
            plan.forward = cache_status(fwd="bypass", detail="uncacheable")
        elif (
            key.temperature is not None
            and key.temperature > sem.max_temperature
            and not sem.cache_high_temperature
        ):
            plan.forward = cache_status(fwd="bypass", detail="temperature")
        elif directives.no_store:
            plan.forward = cache_status(fwd="request", detail="no-store")
            self.metrics.miss("no-store").inc()
            return plan
        if plan.forward is not None:
            self.metrics.miss("bypass").inc()
        return plan

    def _curated(self, hit: Hit, plan: Plan) -> dict[str, Any]:
        return curated_completion(hit.answer or "", plan.model)

    def _served(self, hit: Hit, plan: Plan, ctx: RequestContext | None) -> None:
        self.metrics.hit(hit.kind).inc()
        entry = hit.entry
        if entry is None:
            _header(ctx, "cache-status", cache_status(hit=True, detail="curated"))
        else:
            now = self._clock()
            if hit.kind in ("normalized", "semantic") and plan.key is not None:
                self.tiers.alias(plan.key, entry)
            _header(ctx, "cache-status", cache_status(hit=True, ttl=entry.expires - now, detail=hit.kind))
            _header(ctx, "age", str(max(0, int(now - entry.created))))
        if hit.similarity is not None and hit.kind in ("semantic", "curated"):
            _header(ctx, "x-tidegate-cache-similarity", f"{hit.similarity:.4f}")

    def _miss_status(self, plan: Plan, *, collapsed: bool = False, stored: bool = False) -> str:
        if plan.directives.no_cache:
            fwd, reason = "request", "refresh"
        elif plan.stale:
            fwd, reason = "stale", "stale"
        else:
            fwd, reason = "miss", "miss"
        if not stored:
            self.metrics.miss(reason).inc()
        return cache_status(fwd=fwd, stored=stored, collapsed=collapsed)

    def _store(
        self, plan: Plan, response: dict[str, Any] | None, chunks: list[dict[str, Any]] | None, at: float
    ) -> Deferred | None:
        """Record the answer that arrived ``at``; return the rest (its vector), which the flight
        runs after. Storing is best effort: the clients have their answer."""
        if self.state != "open" or self._tiers is None:
            return None
        try:
            later = self._tiers.record(plan, response, chunks, at)
        except Exception:
            self.metrics.error("store").inc()
            return None
        if later is None:
            return None

        async def finish() -> None:
            if self.state != "open":
                return
            try:
                await later()
            except Exception:
                self.metrics.error("store").inc()

        return finish

    # -- housekeeping -------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait for background work: shared calls and what they store after their answer, index
        rebuilds and inserts (tests and benchmarks; requests never wait for it)."""
        await self._flights.settle()
        if self._tiers is not None:
            await self._tiers.semantic.settle()

    async def sweep(self) -> int:
        """Remove expired entries from every tier now; returns how many went."""
        return await self.tiers.sweep()

    async def _sweep_forever(self) -> None:
        interval = float(self.config.sweep_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                self.metrics.error("sweep").inc()

    def stats(self) -> dict[str, Any]:
        """A snapshot for the admin surface and tests."""
        out: dict[str, Any] = {"state": self.state, "in_flight": len(self._flights)}
        if self._tiers is not None:
            out.update(self._tiers.stats())
            out["semantic"]["threshold"] = self._policies.default.threshold
        return out


def _copy(response: dict[str, Any]) -> dict[str, Any]:
    try:
        return msgspec.json.decode(msgspec.json.encode(response))  # type: ignore[no-any-return]
    except (TypeError, msgspec.EncodeError):
        return dict(response)


def _header(ctx: RequestContext | None, name: str, value: str) -> int | None:
    if ctx is None or not value:
        return None
    ctx.response_headers.append((name, value))
    return len(ctx.response_headers) - 1


def _without_usage(chunks: list[dict[str, Any]] | None, usage: bool) -> list[dict[str, Any]] | None:
    if chunks is None or usage:
        return chunks
    return [c for c in chunks if c.get("choices")]


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _not_cached(ctx: RequestContext | None) -> RequestError:
    _header(ctx, "cache-status", cache_status(fwd="miss", detail="only-if-cached"))
    return RequestError(
        "No cached answer for this request, and `Cache-Control: only-if-cached` forbids asking the model",
        status=504, code="not_cached",
    )  # fmt: skip
