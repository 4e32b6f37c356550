"""Choosing one deployment among the available ones of a tier.

Strategies take an already-filtered candidate list (open breakers, full concurrency caps and
exhausted quotas are gone) and only decide among healthy deployments:

- ``weighted``: random in proportion to ``weight`` — stateless, spreads load by capacity.
- ``least-in-flight``: fewest outstanding calls, ties broken at random so equals share.
- ``least-latency``: power of two choices on EWMA latency × (in-flight + 1) (Finagle's
  peak-EWMA load): two random picks, keep the cheaper. Looking at two instead of all avoids the
  herd that "always the fastest" causes when many requests read the same stale numbers.
- ``round-robin``: the baseline the benchmark compares against.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from .deployment import Deployment

__all__ = [
    "Balancer",
    "LeastInFlight",
    "PowerOfTwoEwma",
    "RoundRobin",
    "WeightedRandom",
    "make_balancer",
]


class Balancer(Protocol):
    def choose(self, candidates: Sequence[Deployment]) -> Deployment: ...


class WeightedRandom:
    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, candidates: Sequence[Deployment]) -> Deployment:
        if len(candidates) == 1:
            return candidates[0]
        total = 0.0
        for deployment in candidates:
            total += deployment.weight
        if total <= 0.0:
            return candidates[self._rng.randrange(len(candidates))]
        point = self._rng.random() * total
        for deployment in candidates:
            point -= deployment.weight
            if point < 0.0:
                return deployment
        return candidates[-1]


class LeastInFlight:
    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, candidates: Sequence[Deployment]) -> Deployment:
        best: Deployment = candidates[0]
        ties = 1
        for deployment in candidates[1:]:
            if deployment.in_flight < best.in_flight:
                best, ties = deployment, 1
            elif deployment.in_flight == best.in_flight:
                ties += 1
                if self._rng.randrange(ties) == 0:  # reservoir pick among equals
                    best = deployment
        return best


class PowerOfTwoEwma:
    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, candidates: Sequence[Deployment]) -> Deployment:
        count = len(candidates)
        if count == 1:
            return candidates[0]
        first = self._rng.randrange(count)
        second = self._rng.randrange(count - 1)
        if second >= first:
            second += 1
        a, b = candidates[first], candidates[second]
        return a if _load(a) <= _load(b) else b


def _load(deployment: Deployment) -> float:
    # An unmeasured deployment (ewma 0) costs only its queue, so it gets tried and measured.
    return deployment.latency() * (deployment.in_flight + 1) + deployment.in_flight * 1e-9


class RoundRobin:
    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def choose(self, candidates: Sequence[Deployment]) -> Deployment:
        deployment = candidates[self._next % len(candidates)]
        self._next += 1
        return deployment


def make_balancer(kind: str, rng: random.Random) -> Balancer:
    if kind == "weighted":
        return WeightedRandom(rng)
    if kind == "least-in-flight":
        return LeastInFlight(rng)
    if kind == "least-latency":
        return PowerOfTwoEwma(rng)
    if kind == "round-robin":
        return RoundRobin()
    raise ValueError(
        f"Expected one of `weighted`, `least-in-flight`, `least-latency`, `round-robin`, got `{kind}`"
    )
