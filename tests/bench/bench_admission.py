"""Admission benchmark: cost per request, and an overload run against the LLM simulator.

(a) Cost of one ``admit`` + release in process, against one bare `limits` hit (async+memory,
    moving window, 10 keys) measured in the same run as the baseline; also `limits`' own memory
    storage vs :class:`LocalStorage` when keys pile up (100k client addresses), which is why
    admission ships its own in-process storage. Target: < 50 µs per admit.
(b) Overload: open-loop Poisson arrivals into ``admit → simulator → release`` with a capacity of
    ``concurrency × 1/ttft`` requests/s, at 1× and 5× that capacity (and 5× with no admission, for
    contrast). The simulator's latency does not depend on its load, so the model server's batch
    slots (and the queue behind them, as in vLLM) are modelled by a semaphore around the call. Prints the shed fraction, p50/p95 of admitted requests, the p95 ratio 5× / 1×
    (target ≤ 1.5), upstream errors (must be 0: the only 5xx are the intended 503s) and RSS
    before/after repeated overload runs (no growth beyond noise).

    python tests/bench/bench_admission.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, pct, process, table
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from prometheus_client import CollectorRegistry

from tidegate.admission import Admission, LocalStorage, RequestInfo
from tidegate.config.admission import AdmissionSection
from tidegate.config.loader import convert_section
from tidegate.errors import Overloaded, RateLimited


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def timed(label: str, n: int, body: Any, *, yields: bool = True) -> tuple[str, float]:
    """µs per call of ``await body(i)`` over ``n`` calls (best of 3).

    The loop is yielded to every 10 calls, as a server does between requests, so background
    work a storage schedules (`limits`' memory expiry task) is paid for inside the measurement.
    """
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            await body(i)
            if yields and i % 10 == 9:
                await asyncio.sleep(0)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return label, best


async def stop_expiry(storage: MemoryStorage) -> None:
    """Cancel `limits`' memory expiry task so it doesn't bill the next measurements."""
    timer = storage.timer
    if timer is not None and not timer.done():
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
    await storage.reset()


def admission(data: dict[str, Any]) -> Admission:
    return Admission(convert_section(data, AdmissionSection, "$"), registry=CollectorRegistry())


# -- (a) cost ------------------------------------------------------------------------------


async def cost(quick: bool) -> None:
    n = 5_000 if quick else 20_000
    item = parse("1000000/minute")
    many = 100_000
    addresses = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(many)]
    rows: list[tuple[str, float]] = []

    storage = MemoryStorage()
    moving = MovingWindowRateLimiter(storage)
    rows.append(await timed("limits hit, moving window, 10 keys, no loop turns (baseline)", n,
                            lambda i: moving.hit(item, addresses[i % 10]), yields=False))  # fmt: skip
    rows.append(await timed("limits hit, moving window, 10 keys", n,
                            lambda i: moving.hit(item, addresses[i % 10])))  # fmt: skip
    await stop_expiry(storage)

    async def fill(limiter: Any) -> None:
        for address in addresses:
            await limiter.hit(item, address)

    swc_storage = MemoryStorage()
    swc_limits = SlidingWindowCounterRateLimiter(swc_storage)
    await fill(swc_limits)
    rows.append(await timed("limits hit, sliding counter, limits memory, 100k keys", n // 10,
                            lambda i: swc_limits.hit(item, addresses[i % many])))  # fmt: skip
    await stop_expiry(swc_storage)
    local = LocalStorage()
    swc_local = SlidingWindowCounterRateLimiter(local)
    await fill(swc_local)
    rows.append(await timed("limits hit, sliding counter, LocalStorage, 100k keys", n,
                            lambda i: swc_local.hit(item, addresses[i % many])))  # fmt: skip
    moving_local = MovingWindowRateLimiter(LocalStorage())
    await fill(moving_local)
    rows.append(await timed("limits hit, moving window, LocalStorage, 100k keys", n,
                            lambda i: moving_local.hit(item, addresses[i % many])))  # fmt: skip

    one_rule = admission({"limits": [{"key": "ip", "requests": "1000000/minute"}]})
    three = admission(
        {
            "limits": [
                {"key": "ip", "requests": "1000000/minute"},
                {"key": "api_key", "tokens": "100000000/minute"},
                {"key": "global", "concurrency": 512},
            ]
        }
    )
    proxied = admission(
        {
            "limits": [
                {"key": "ip", "requests": "1000000/minute"},
                {"key": "api_key", "tokens": "100000000/minute"},
                {"key": "global", "concurrency": 512},
            ],
            "admission": {"trusted_proxies": ["10.0.0.0/8"], "priority_header": "x-priority"},
        }
    )
    for adm in (one_rule, three, proxied):
        await adm.start()
    infos = [RequestInfo(client_ip=a, api_key_name=f"k{i % 100}", est_tokens=300)
             for i, a in enumerate(addresses)]  # fmt: skip
    behind = [RequestInfo(client_ip="10.0.0.1", headers={"x-forwarded-for": f"203.0.{i >> 8 & 255}.{i & 255}"},
                          api_key_name=f"k{i % 100}", est_tokens=300) for i in range(many)]  # fmt: skip
    for adm, batch in ((one_rule, infos), (three, infos), (proxied, behind)):
        for request in batch:  # every key exists: the steady state of a busy day
            (await adm.admit(request)).release()

    async def admit_release(adm: Admission, batch: list[RequestInfo], i: int) -> None:
        (await adm.admit(batch[i % many])).release()

    async def full(i: int) -> None:
        ticket = await three.admit(infos[i % many])
        async with ticket:
            await ticket.reconcile(200)
            ticket.headers(openai=True)

    rows.append(await timed("admit+release, 1 rule (ip), 100k keys", n,
                            lambda i: admit_release(one_rule, infos, i)))  # fmt: skip
    rows.append(await timed("admit+release, 3 rules (ip, tokens, concurrency)", n,
                            lambda i: admit_release(three, infos, i)))  # fmt: skip
    rows.append(await timed("  + reconcile + OpenAI headers", n, full))
    rows.append(await timed("  behind a trusted proxy (X-Forwarded-For)", n,
                            lambda i: admit_release(proxied, behind, i)))  # fmt: skip
    for adm in (one_rule, three, proxied):
        await adm.close()

    base = rows[0][1]
    table(
        "(a) admission cost in process (best of 3), ratio vs one bare limits hit",
        ["operation", "µs/op", "× baseline"],
        [[label, f"{us:.1f}", f"{us / base:.1f}"] for label, us in rows],
    )
    worst_admit = max(us for label, us in rows if label.startswith(("admit", " ")))
    print(f"  target < 50 µs per admit: {'met' if worst_admit < 50 else 'MISSED'} "
          f"(worst {worst_admit:.1f} µs)")  # fmt: skip


# -- (b) overload --------------------------------------------------------------------------

CONCURRENCY = 16
UPSTREAM_SLOTS = 16  # the model server's batch size (requests beyond it wait inside the server)
TTFT = 0.05
CAPACITY = CONCURRENCY / TTFT  # requests per second the configured cap lets through


async def overload_run(
    url: str, multiple: float, seconds: float, *, protected: bool, seed: int
) -> dict[str, Any]:
    adm = admission(
        {
            "limits": [
                {"key": "global", "concurrency": CONCURRENCY, "queue": CONCURRENCY,
                 "queue_timeout": "250ms"},
            ]
        }
    )  # fmt: skip
    await adm.start()
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    counts = {"admitted": 0, "shed": 0, "limited": 0, "upstream_errors": 0}
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    # The simulator answers in `ttft` whatever its load; a real model server has a fixed number
    # of batch slots and queues the rest inside. Model that queue here, in front of the call.
    slots = asyncio.Semaphore(UPSTREAM_SLOTS)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with slots:
                async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                    await response.read()
                    if response.status >= 500:
                        counts["upstream_errors"] += 1

        async def one() -> None:
            arrived = time.perf_counter()
            try:
                if protected:
                    request = RequestInfo(client_ip=f"198.51.100.{rng.randrange(250)}",
                                          deadline=loop.time() + 2.0)  # fmt: skip
                    async with await adm.admit(request):
                        await call()
                else:
                    await call()
            except Overloaded:
                counts["shed"] += 1
                return
            except RateLimited:
                counts["limited"] += 1
                return
            except (aiohttp.ClientError, TimeoutError):
                counts["upstream_errors"] += 1
                return
            counts["admitted"] += 1
            latencies.append(time.perf_counter() - arrived)

        rate = CAPACITY * multiple
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        next_at = 0.0
        while next_at < seconds:
            next_at += rng.expovariate(rate)
            delay = start + next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start  # until the last request finished
    await adm.close()
    total = len(tasks)
    return {
        "total": total,
        "refused": (counts["shed"] + counts["limited"]) / total,
        "p50": pct(latencies, 0.5) * 1e3 if latencies else float("nan"),
        "p95": pct(latencies, 0.95) * 1e3 if latencies else float("nan"),
        "throughput": counts["admitted"] / elapsed,
        **counts,
    }


async def overload(quick: bool) -> None:
    seconds = 1.5 if quick else 3.0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "tidegate.providers.simulator", "--port", str(port),
           "--ttft", f"{int(TTFT * 1000)}ms", "--tokens", "8"]  # fmt: skip
    with process(cmd, ready_url=url):
        await overload_run(url, 0.5, 0.5, protected=True, seed=0)  # warm up both processes
        gc.collect()
        rss_before = rss_mb()
        one = await overload_run(url, 1.0, seconds, protected=True, seed=1)
        five = await overload_run(url, 5.0, seconds, protected=True, seed=2)
        gc.collect()
        rss_mid = rss_mb()
        five_again = await overload_run(url, 5.0, seconds, protected=True, seed=3)
        gc.collect()
        rss_after = rss_mb()
        bare = await overload_run(url, 5.0, seconds, protected=False, seed=2)
    rows = []
    for name, run in (("1× capacity", one), ("5× capacity", five), ("5× again", five_again),
                      ("5×, no admission", bare)):  # fmt: skip
        rows.append([
            name, str(run["total"]), f"{run['refused']:.0%}", f"{run['throughput']:.0f}",
            f"{run['p50']:.1f}", f"{run['p95']:.1f}", str(run["upstream_errors"]),
        ])  # fmt: skip
    table(
        f"(b) overload vs simulator (ttft {TTFT * 1000:.0f} ms, {UPSTREAM_SLOTS} batch slots; "
        f"cap {CONCURRENCY} concurrent, queue {CONCURRENCY}, 250 ms queue timeout: "
        f"capacity {CAPACITY:.0f} req/s)",
        ["run", "requests", "shed 503", "served/s", "p50 ms", "p95 ms", "upstream 5xx/errors"],
        rows,
    )
    ratio = five["p95"] / one["p95"]
    print(
        f"  p95 admitted 5× / 1×: {ratio:.2f} (target ≤ 1.5: {'met' if ratio <= 1.5 else 'MISSED'})"
    )
    errors = one["upstream_errors"] + five["upstream_errors"] + five_again["upstream_errors"]
    print(f"  5xx other than the intended 503s (protected runs): {errors}")
    print(f"  RSS: {rss_before:.1f} MB before, {rss_mid:.1f} MB after 1×+5×, "
          f"{rss_after:.1f} MB after another 5× ({rss_after - rss_mid:+.1f} MB)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, shorter runs")
    args = parser.parse_args()
    await cost(args.quick)
    await overload(args.quick)


if __name__ == "__main__":
    asyncio.run(main())
