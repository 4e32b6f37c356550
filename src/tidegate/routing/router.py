"""The router: pick a tier, then get an answer out of it despite failing deployments.

Per request: choose a target (a ``tier``/header override, a named tier or model, or the tier the
complexity score falls into for ``model: auto``), then walk its fallback chain; inside each
target, the balancer picks among deployments whose breaker, quotas and Retry-After allow a call,
failing over to an untried one at once and backing off only before calling the same one again.
Everything is bounded by one deadline. When nothing answers, a configured degraded text does, or
``RouteUnavailable`` is raised. Streams share all of this up to their first chunk (see
``stream.py``); after it nothing is retried, because the client already has bytes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..config.routing import AUTO_MODEL, RoutingConfig
from ..context import RequestContext
from ..errors import RouteUnavailable, UpstreamError
from .build import build_cascades, build_deployment, build_table, retry_policy
from .decision import RouteDecision
from .degraded import degraded_response
from .deployment import Deployment
from .ledger import Exhausted, Ledger, Plan, Win, as_upstream_error, estimate_tokens, outcome_label
from .metrics import RoutingMetrics
from .scorer import Score, Scorer
from .stream import RouteStream
from .tiers import Target

if TYPE_CHECKING:
    from .head import Head

__all__ = ["Router"]

T = TypeVar("T")


class Router:
    """Built once per Gateway from the ``routing:`` section and the started upstreams."""

    def __init__(
        self,
        config: RoutingConfig,
        upstreams: Mapping[str, Any],
        *,
        registry: Any = None,
        head: Head | None = None,
        base_dir: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = RoutingMetrics(registry)
        self.scorer = Scorer(config.scorer.weights)
        if head is None and config.scorer.head is not None:
            path = Path(config.scorer.head)
            if not path.is_absolute() and base_dir is not None:
                path = Path(base_dir) / path
            from .head import Head  # numpy only when a head is configured

            head = Head.load(path)
        self.head = head
        self.head_weight = config.scorer.head_weight
        self.retry = retry_policy(config.retry, self.rng)
        self.degraded_text = (
            config.degraded.text
            if config.degraded is not None and config.degraded.enabled
            else None
        )
        self.deployments = {
            name: build_deployment(name, upstream, config.breaker, self.metrics, clock)
            for name, upstream in upstreams.items()
        }
        self.table = build_table(config, self.deployments, self.rng)
        self.cascades = build_cascades(config)
        self._tier_header = config.tier_header.lower()
        self._count_tokens = any(d.tpm is not None for d in self.deployments.values())

    def __repr__(self) -> str:
        return f"Router(tiers={list(self.table.tiers)}, deployments={list(self.deployments)})"

    # -- planning ------------------------------------------------------------------------------

    def score(self, body: Mapping[str, Any], embedding: Any = None) -> Score:
        """Rules, blended with the learned head when it and the query embedding are at hand."""
        score = self.scorer.score(body)
        if self.head is None or embedding is None:
            return score
        probability = self.head.predict(embedding)
        value = (1.0 - self.head_weight) * score.value + self.head_weight * probability
        return Score(value, (("head", probability), *score.signals))

    def plan(
        self, body: Mapping[str, Any], ctx: RequestContext | None = None, *, embedding: Any = None
    ) -> Plan:
        payload = dict(body)
        forced = payload.pop("tier", None)
        override = "body" if forced else None
        if not forced and ctx is not None and ctx.headers:
            forced = ctx.headers.get(self._tier_header)
            override = "header" if forced else None
        score: Score | None = None
        if forced:
            target = self.table.target(str(forced), param="tier")
        else:
            model = payload.get("model") or AUTO_MODEL
            if model == AUTO_MODEL:
                score = self.score(payload, embedding)
                target = self.table.tier_for(score.value)
                self.metrics.score.observe(score.value)
            else:
                target = self.table.target(str(model))
        tokens = estimate_tokens(payload) if self._count_tokens else 0
        return Plan(target, payload, score, override, tokens)

    def deadline(self, ctx: RequestContext | None) -> float:
        """Absolute ``loop.time()`` by which the route must be done (``ctx.deadline`` uses that clock)."""
        deadline = asyncio.get_running_loop().time() + float(self.retry.deadline)
        if ctx is not None and ctx.deadline is not None:
            deadline = min(deadline, ctx.deadline)
        return deadline

    # -- non-streamed --------------------------------------------------------------------------

    async def chat(
        self, body: Mapping[str, Any], ctx: RequestContext | None = None, *, embedding: Any = None
    ) -> tuple[dict[str, Any], RouteDecision]:
        """A chat completion through the route; the decision says who answered and at what cost."""
        plan = self.plan(body, ctx, embedding=embedding)
        ledger = Ledger()
        payload = plan.body

        async def call(deployment: Deployment) -> dict[str, Any]:
            response: dict[str, Any] = await deployment.upstream.chat(payload, ctx=ctx)
            return response

        try:
            win = await self.answer(plan, call, ledger, self.deadline(ctx))
        except Exhausted as exc:
            return degraded_response(self.degraded_text or ""), self.give_up(plan, ledger, exc)
        return win.result, self.decide(plan, ledger, win, ctx)

    async def answer(
        self,
        plan: Plan,
        call: Callable[[Deployment], Awaitable[dict[str, Any]]],
        ledger: Ledger,
        deadline: float,
    ) -> Win[dict[str, Any]]:
        """Run the plan's chain for a finished completion, with the cascade starting there if any.

        When the light answer fails a check the strong tier is asked; if the strong tier cannot
        answer at all, the light answer is returned anyway (a weak answer beats none).
        """
        rule = self.cascades.get(plan.target.name)
        chain = self.table.chain(plan.target)
        if rule is None:
            return await self.run(chain, call, ledger, deadline, plan.tokens, usage=_usage)
        win: Win[dict[str, Any]] | None = None
        failed = "unavailable"
        try:
            win = await self.run(chain, call, ledger, deadline, plan.tokens, usage=_usage)
            failed = rule.failed(plan.body, win.result) or ""
        except Exhausted:
            pass
        if win is not None and not failed:
            return win
        ledger.escalated = failed
        self.metrics.escalations.labels(rule.source, rule.target, failed).inc()
        if win is not None:
            win.settle()
        strong = self.table.chain(self.table.target(rule.target))
        try:
            return await self.run(strong, call, ledger, deadline, plan.tokens, usage=_usage)
        except Exhausted:
            if win is None:
                raise
            return win

    # -- the resilient loop --------------------------------------------------------------------

    async def run(
        self,
        chain: tuple[Target, ...],
        call: Callable[[Deployment], Awaitable[T]],
        ledger: Ledger,
        deadline: float,
        tokens: int = 0,
        *,
        usage: Callable[[T], Any] | None = None,
    ) -> Win[T]:
        """First successful call along ``chain``; raises :class:`Exhausted` when none succeeds.

        On success the deployment's slot is still held: the caller ends it (``settle``) once
        the response is consumed, which for a stream is its last chunk.
        """
        loop = asyncio.get_running_loop()
        policy = self.retry
        last: BaseException | None = None
        for target in chain:
            tried: set[str] = set()
            retries = 0
            for _ in range(policy.attempts):
                deployment = target.pick(tried, tokens)
                if deployment is None:
                    # Only Retry-After pauses are worth waiting out, and only when no fallback
                    # follows or the pause is as short as a backoff.
                    wait = target.rate_limit_wait()
                    if wait is None or loop.time() + wait >= deadline:
                        break
                    if target is not chain[-1] and wait > policy.backoff_max:
                        break
                    await asyncio.sleep(wait)
                    deployment = target.pick(tried, tokens)
                elif deployment.name in tried:
                    retries += 1
                    wait = policy.backoff(retries)
                    if loop.time() + wait >= deadline:
                        break
                    await asyncio.sleep(wait)
                    if not deployment.available(tokens, queue=True):
                        deployment = target.pick(tried, tokens)
                remaining = deadline - loop.time()
                if deployment is None or remaining <= 0:
                    break
                if not deployment.breaker.allow():
                    tried.add(deployment.name)
                    continue
                deployment.begin(tokens)
                ledger.attempts += 1
                started = time.perf_counter()  # latency: loop.time() ticks in ms under uvloop
                timeout = (
                    remaining
                    if policy.attempt_timeout is None
                    else min(remaining, policy.attempt_timeout)
                )
                try:
                    async with asyncio.timeout(timeout):
                        result = await call(deployment)
                except (UpstreamError, TimeoutError, OSError) as exc:
                    error = as_upstream_error(exc, deployment.name, timeout)
                    last = error
                    kind = policy.classify(error)
                    outcome = outcome_label(error)
                    ledger.trail.append(f"{deployment.name}:{outcome}")
                    self.metrics.attempt(deployment.name, outcome).inc()
                    if kind in ("retry", "fallback"):
                        deployment.breaker.record_failure()
                        deployment.end(time.perf_counter() - started, ok=False)
                    else:
                        deployment.breaker.release()
                        deployment.done()
                    if kind == "fatal":
                        if error is exc:
                            raise
                        raise error from exc
                    if kind == "rate_limited":
                        pause = error.retry_after
                        if pause is None:
                            pause = policy.backoff(retries + 1)
                        deployment.cooldown_until = self.clock() + min(
                            pause, float(policy.max_retry_after)
                        )
                    tried.add(deployment.name)
                    if kind == "fallback":
                        break
                    continue
                except BaseException:
                    deployment.breaker.release()
                    deployment.done()
                    raise
                ledger.trail.append(f"{deployment.name}:ok")
                self.metrics.attempt(deployment.name, "ok").inc()
                deployment.breaker.record_success()
                if usage is not None:
                    self.account(deployment, usage(result), ledger, tokens)
                return Win(target, deployment, result, started)
        raise Exhausted(last)

    def account(self, deployment: Deployment, usage: Any, ledger: Ledger, estimated: int) -> None:
        """Add a call's price to the ledger and true up the tpm window with its real tokens."""
        ledger.cost += deployment.cost(usage)
        if deployment.tpm is not None and isinstance(usage, dict):
            total = usage.get("total_tokens")
            if isinstance(total, int) and total > estimated:
                deployment.add_tokens(total - estimated)

    # -- outcomes ------------------------------------------------------------------------------

    def decide(
        self,
        plan: Plan,
        ledger: Ledger,
        win: Win[Any],
        ctx: RequestContext | None,
        *,
        settle: bool = True,
    ) -> RouteDecision:
        """The decision for an answered request; ``settle`` frees the deployment's slot now."""
        if settle:
            win.settle()
        rule = self.cascades.get(plan.target.name)
        expected = (
            {plan.target.name, rule.target} if ledger.escalated and rule else {plan.target.name}
        )
        fallback = win.target.name not in expected
        decision = RouteDecision(
            tier=win.target.name,
            model=win.deployment.name,
            requested=plan.target.name,
            score=plan.score.value if plan.score else None,
            signals=plan.score.signals if plan.score else (),
            override=plan.override,
            attempts=ledger.attempts,
            trail=tuple(ledger.trail),
            fallback_used=fallback,
            escalated=ledger.escalated,
            cost=ledger.cost,
        )
        outcome = "fallback" if fallback else "escalated" if ledger.escalated else "ok"
        self.metrics.request(win.target.name, win.deployment.name, outcome).inc()
        self.count_cost(decision, ctx)
        return decision

    def count_cost(self, decision: RouteDecision, ctx: RequestContext | None) -> None:
        if decision.cost > 0 and decision.tier and decision.model:
            tenant = (ctx.tenant if ctx is not None else None) or "-"
            self.metrics.spent(tenant, decision.tier, decision.model).inc(decision.cost)

    def give_up(self, plan: Plan, ledger: Ledger, exhausted: Exhausted) -> RouteDecision:
        """Nothing answered: decide for the degraded text if configured, else raise ``RouteUnavailable``."""
        if self.degraded_text is None:
            self.metrics.request(plan.target.name, "-", "error").inc()
            waits = [d.wait_hint() for t in self.table.chain(plan.target) for d in t.deployments]
            retry_after = min((w for w in waits if w > 0), default=None)
            trail = " > ".join(ledger.trail) or "no deployment was available"
            raise RouteUnavailable(
                f"No deployment of `{plan.target.name}` or its fallbacks could answer ({trail})",
                retry_after=retry_after,
            ) from exhausted.last
        self.metrics.degraded.inc()
        self.metrics.request("-", "-", "degraded").inc()
        return RouteDecision(
            tier=None, model=None, requested=plan.target.name,
            score=plan.score.value if plan.score else None,
            signals=plan.score.signals if plan.score else (), override=plan.override,
            attempts=ledger.attempts, trail=tuple(ledger.trail), fallback_used=bool(ledger.trail),
            escalated=ledger.escalated, degraded=True, cost=ledger.cost,
        )  # fmt: skip

    def stream(
        self, body: Mapping[str, Any], ctx: RequestContext | None = None, *, embedding: Any = None
    ) -> RouteStream:
        """A routed stream: ``await s.open()`` gives the decision, then iterate the chunks."""
        return RouteStream(self, body, ctx, embedding=embedding)


def _usage(response: dict[str, Any]) -> Any:
    return response.get("usage")
