"""A router over real simulators: the fixtures every executor test builds on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry

from tidegate.config import ModelConfig, convert_section
from tidegate.config.routing import RoutingConfig
from tidegate.providers.simulator import Simulator, SimulatorConfig
from tidegate.providers.upstream import Upstream
from tidegate.routing import Router


class Cluster:
    def __init__(
        self, router: Router, sims: dict[str, Simulator], upstreams: dict[str, Upstream]
    ) -> None:
        self.router = router
        self.sims = sims
        self.upstreams = upstreams
        self.registry: CollectorRegistry = router.metrics.registry

    def requests(self, name: str) -> int:
        return int(self.sims[name].stats["by_endpoint"]["chat"])

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


HARD = (
    "Prove step by step that there are infinitely many primes, then derive and explain why the "
    "gaps between consecutive primes can be arbitrarily large, and analyze the implications."
)


@contextlib.asynccontextmanager
async def cluster(
    routing: dict[str, Any],
    models: dict[str, dict[str, Any]],
    *,
    sims: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
) -> AsyncIterator[Cluster]:
    """Start one simulator per model, an Upstream each, and a Router over them."""
    import random

    started: dict[str, Simulator] = {}
    upstreams: dict[str, Upstream] = {}
    try:
        for name, extra in models.items():
            sim_options = {"ttft": 0.0, "tokens_per_second": 0.0, **(sims or {}).get(name, {})}
            sim = Simulator(SimulatorConfig(**sim_options))
            await sim.start()
            started[name] = sim
            options = {"url": sim.url, "model": "sim-small", "timeout": 5.0, **extra}
            upstream = Upstream(name, ModelConfig(**options))
            await upstream.start()
            upstreams[name] = upstream
        config = convert_section(routing, RoutingConfig, "$.routing")
        router = Router(config, upstreams, registry=CollectorRegistry(), rng=random.Random(seed))
        yield Cluster(router, started, upstreams)
    finally:
        for upstream in upstreams.values():
            await upstream.close()
        for sim in started.values():
            await sim.stop()
