"""Compiled routing table: targets (tiers and single models), thresholds and fallback chains.

Built once from the config so the request path only does dict lookups: a requested name maps to
its target, a score maps to a tier by walking a short threshold list, and each target already
knows its full fallback chain (transitive, in order, without repeats or cycles).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from ..errors import NotFoundError
from .balancer import Balancer, RoundRobin
from .deployment import Deployment

__all__ = ["RoutingTable", "Target"]


class Target:
    """Something a request can be sent to: a tier, or one model standing alone."""

    __slots__ = ("balancer", "deployments", "kind", "name")

    def __init__(
        self,
        name: str,
        deployments: Sequence[Deployment],
        balancer: Balancer,
        *,
        kind: Literal["tier", "model"] = "tier",
    ) -> None:
        self.name = name
        self.kind = kind
        self.deployments = tuple(deployments)
        self.balancer = balancer

    def __repr__(self) -> str:
        return f"Target({self.name!r}, kind={self.kind!r}, deployments={[d.name for d in self.deployments]})"

    def pick(self, tried: set[str] | frozenset[str], tokens: int = 0) -> Deployment | None:
        """A deployment to call now: untried ones first, then any available one.

        When every healthy deployment is at its concurrency cap, the least busy one is returned
        anyway (its upstream pool queues the call); None only when none is healthy.
        """
        if len(self.deployments) == 1:
            only = self.deployments[0]
            return only if only.available(tokens, queue=True) else None
        fresh: list[Deployment] = []
        again: list[Deployment] = []
        for deployment in self.deployments:
            if deployment.available(tokens):
                (again if deployment.name in tried else fresh).append(deployment)
        if fresh:
            return self.balancer.choose(fresh)
        if again:
            return self.balancer.choose(again)
        full = [d for d in self.deployments if d.available(tokens, queue=True)]
        if not full:
            return None
        untried = [d for d in full if d.name not in tried] or full
        return min(untried, key=lambda d: d.in_flight / (d.max_concurrency or 1))

    def rate_limit_wait(self) -> float | None:
        """Seconds until a deployment held back only by a Retry-After can take calls, if any.

        Open breakers are not waited for (their cooldown is long; fallbacks should answer).
        """
        best: float | None = None
        for deployment in self.deployments:
            wait = deployment.cooldown_left()
            if wait > 0.0 and deployment.breaker.available() and (best is None or wait < best):
                best = wait
        return best


class RoutingTable:
    """Name → target, score → tier, target → fallback chain."""

    __slots__ = ("_chains", "_thresholds", "default_tier", "targets", "tiers")

    def __init__(
        self,
        tiers: Sequence[tuple[Target, float | None]],
        models: Mapping[str, Deployment],
        fallbacks: Mapping[str, Sequence[str]],
    ) -> None:
        self.tiers: dict[str, Target] = {target.name: target for target, _ in tiers}
        self.targets: dict[str, Target] = {
            name: Target(name, [deployment], RoundRobin(), kind="model")
            for name, deployment in models.items()
        }
        self.targets.update(self.tiers)  # a tier named like a model holds exactly that model
        self._thresholds: list[tuple[float, Target]] = []
        self.default_tier: Target | None = None
        for target, below in tiers:
            if below is None:
                if self.default_tier is None:
                    self.default_tier = target
            elif self.default_tier is None:
                self._thresholds.append((below, target))
        if self.default_tier is None and tiers:
            self.default_tier = tiers[-1][0]
        self._chains: dict[str, tuple[Target, ...]] = {
            name: self._chain(name, fallbacks) for name in self.targets
        }

    def _chain(self, start: str, fallbacks: Mapping[str, Sequence[str]]) -> tuple[Target, ...]:
        order: list[str] = []
        queue = [start]
        while queue:
            name = queue.pop(0)
            if name in order or name not in self.targets:
                continue
            order.append(name)
            queue.extend(fallbacks.get(name, ()))
        return tuple(self.targets[name] for name in order)

    def tier_for(self, score: float) -> Target:
        for below, target in self._thresholds:
            if score < below:
                return target
        if self.default_tier is None:
            raise NotFoundError(
                "The model `auto` needs `routing.tiers` in the config; none are configured",
                code="model_not_found",
                param="model",
            )
        return self.default_tier

    def target(self, name: str, *, param: str = "model") -> Target:
        target = self.targets.get(name)
        if target is None:
            known = (
                ", ".join(sorted(["auto", *self.targets]))
                if self.tiers
                else ", ".join(sorted(self.targets))
            )
            raise NotFoundError(
                f"The {param} `{name}` does not exist (configured: {known or 'none'})",
                code="model_not_found",
                param=param,
            )
        return target

    def chain(self, target: Target) -> tuple[Target, ...]:
        return self._chains[target.name]
