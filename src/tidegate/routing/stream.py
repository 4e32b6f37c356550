"""A routed stream: everything before the first chunk is retried, nothing after it is.

``open()`` routes, retries and falls back until one deployment has produced its first chunk (or
the degraded text takes over), so the decision exists before the surface sends its headers.
After that the chunks are relayed as they come; a failure mid-stream is recorded against the
deployment's breaker and raised to the client, because replaying would duplicate text it already
has. A cascade runs its light call non-streamed (nothing has been sent yet) and replays the
answer as chunks when it passes, or streams the strong tier when it does not.

A plain class rather than an async generator so that ``aclose()`` frees the deployment and the
upstream connection even when the consumer opened the stream and never iterated it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..context import RequestContext
from ..errors import UpstreamError, UsageError
from .decision import RouteDecision
from .degraded import degraded_chunks, response_chunks
from .deployment import Deployment
from .ledger import Exhausted, Ledger, Plan, Win

if TYPE_CHECKING:
    from .router import Router

__all__ = ["RouteStream"]

Opened = tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any] | None]


class RouteStream:
    """``async with router.stream(body, ctx) as s: decision = await s.open(); async for c in s``.

    Iterating without ``open()`` opens on the first step; ``aclose()`` (or leaving the ``async
    with``) closes the upstream connection and frees the deployment.
    """

    def __init__(
        self,
        router: Router,
        body: Mapping[str, Any],
        ctx: RequestContext | None = None,
        *,
        embedding: Any = None,
    ) -> None:
        self._router = router
        self._body = body
        self._ctx = ctx
        self._embedding = embedding
        self._replay: Iterator[dict[str, Any]] | None = None
        self._win: Win[Opened] | None = None
        self._first: dict[str, Any] | None = None
        self._usage: Any = None
        self._closed = False
        self.decision: RouteDecision | None = None

    async def open(self) -> RouteDecision:
        """Route until a first chunk is in hand; idempotent."""
        if self.decision is not None:
            return self.decision
        if self._closed:
            raise UsageError("RouteStream is closed")
        router, ctx = self._router, self._ctx
        plan = router.plan(self._body, ctx, embedding=self._embedding)
        ledger = Ledger()
        deadline = router.deadline(ctx)
        payload = {**plan.body, "stream": True}

        async def start(deployment: Deployment) -> Opened:
            chunks = deployment.upstream.stream(payload, ctx=ctx)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                first = None
            except BaseException:
                await chunks.aclose()
                raise
            return chunks, first

        light: Win[dict[str, Any]] | None = None
        try:
            chain = router.table.chain(plan.target)
            rule = router.cascades.get(plan.target.name)
            if rule is not None:
                light, failed = await self._light(plan, ledger, deadline)
                if light is not None and failed is None:
                    return self._replaying(router.decide(plan, ledger, light, ctx), light.result)
                ledger.escalated = failed or "unavailable"
                router.metrics.escalations.labels(rule.source, rule.target, ledger.escalated).inc()
                if light is not None:
                    light.settle()
                chain = router.table.chain(router.table.target(rule.target))
            win = await router.run(chain, start, ledger, deadline, plan.tokens)
        except Exhausted as exc:
            if light is not None:  # the strong tier is down: a weak answer beats none
                return self._replaying(router.decide(plan, ledger, light, ctx), light.result)
            self._replay = degraded_chunks(router.degraded_text or "")
            self.decision = router.give_up(plan, ledger, exc)
            return self.decision
        win.deployment.observe(time.perf_counter() - win.started)  # time to first chunk
        self._win = win
        self._first = win.result[1]
        self.decision = router.decide(plan, ledger, win, ctx, settle=False)
        return self.decision

    async def _light(
        self, plan: Plan, ledger: Ledger, deadline: float
    ) -> tuple[Win[dict[str, Any]] | None, str | None]:
        router, ctx = self._router, self._ctx
        plain = {k: v for k, v in plan.body.items() if k not in ("stream", "stream_options")}

        async def call(deployment: Deployment) -> dict[str, Any]:
            response: dict[str, Any] = await deployment.upstream.chat(plain, ctx=ctx)
            return response

        rule = router.cascades[plan.target.name]
        try:
            light = await router.run(
                router.table.chain(plan.target), call, ledger, deadline, plan.tokens,
                usage=lambda response: response.get("usage"),
            )  # fmt: skip
        except Exhausted:
            return None, "unavailable"
        return light, rule.failed(plan.body, light.result)

    def _replaying(self, decision: RouteDecision, response: dict[str, Any]) -> RouteDecision:
        self._replay = response_chunks(response)
        self.decision = decision
        return decision

    # -- iteration -----------------------------------------------------------------------------

    def __aiter__(self) -> RouteStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.decision is None:
            await self.open()
        if self._replay is not None:
            for chunk in self._replay:
                return chunk
            raise StopAsyncIteration
        win = self._win
        if win is None or win.settled:
            raise StopAsyncIteration
        if self._first is not None:
            chunk, self._first = self._first, None
        else:
            try:
                chunk = await anext(win.result[0])
            except StopAsyncIteration:
                await self._finish()
                raise
            except (UpstreamError, OSError, TimeoutError):
                win.deployment.breaker.record_failure()
                self._router.metrics.attempt(win.deployment.name, "broken_stream").inc()
                await self._finish()
                raise
            except BaseException:
                await self._finish()
                raise
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        return chunk

    async def _finish(self) -> None:
        """Close the upstream, free the slot and book the stream's cost (once)."""
        win = self._win
        if win is None or win.settled:
            return
        win.settled = True
        win.deployment.done()
        try:
            await win.result[0].aclose()
        finally:
            decision = self.decision
            if decision is not None and self._usage is not None:
                cost = win.deployment.cost(self._usage)
                decision.cost += cost
                if cost:
                    tenant = (self._ctx.tenant if self._ctx is not None else None) or "-"
                    self._router.metrics.spent(
                        tenant, decision.tier or "-", win.deployment.name
                    ).inc(cost)

    async def aclose(self) -> None:
        self._closed = True
        self._replay = None
        await self._finish()

    async def __aenter__(self) -> RouteStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
