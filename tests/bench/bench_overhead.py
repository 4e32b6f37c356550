"""Foundation benchmark: what the middleware and the OpenAI surface add, against baselines run here.

(a) pass-through: a host route through TidegateMiddleware vs the bare host app (wrk throughput, and
    an in-process ASGI call loop that isolates the middleware's own cost from socket noise);
(b) chat: client → tidegate → simulator vs client → simulator directly, at concurrency 1 and 64,
    added latency p50/p99; plus the in-process API (`gateway.chat`) vs a direct aiohttp call.
Runs alternate A/B/A/B so drift on a shared machine hits both sides alike.

    python tests/bench/bench_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _apps import make_host
from _harness import (
    free_port,
    latencies,
    median,
    pct,
    process,
    simulator_cmd,
    table,
    uvicorn_cmd,
    wrk,
)

from tidegate import Gateway, TidegateMiddleware
from tidegate.config import parse_config

BODY = {"model": "light", "messages": [{"role": "user", "content": "How do I get a refund?"}], "max_tokens": 16}


async def asgi_loop(app: Any, n: int) -> float:
    """Seconds per call of ``app`` on a GET /ping, driven in-process with no sockets."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/ping", "raw_path": b"/ping", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"x")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    for _ in range(500):
        await app(dict(scope), receive, send)
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n


async def passthrough(config_path: Path, quick: bool) -> None:
    gateway_config = parse_config({"models": {"light": {"url": "http://127.0.0.1:9/v1"}}})
    bare = make_host()
    wrapped = TidegateMiddleware(make_host(), gateway=Gateway(gateway_config))
    n = 5_000 if quick else 30_000
    bare_s, wrapped_s = [], []
    for _ in range(3):
        bare_s.append(await asgi_loop(bare, n))
        wrapped_s.append(await asgi_loop(wrapped, n))
    added_us = (median(wrapped_s) - median(bare_s)) * 1e6

    bare_port, wrapped_port = free_port(), free_port()
    env = {"TIDEGATE_BENCH_CONFIG": str(config_path)}
    rows = []
    with process(uvicorn_cmd("tests.bench._apps:bare", bare_port), ready_url=f"http://127.0.0.1:{bare_port}", env=env), \
         process(uvicorn_cmd("tests.bench._apps:wrapped", wrapped_port), ready_url=f"http://127.0.0.1:{wrapped_port}", env=env):  # fmt: skip
        seconds = 2 if quick else 4
        bare_rps, wrapped_rps = [], []
        for _ in range(2 if quick else 3):
            b = wrk(f"http://127.0.0.1:{bare_port}/ping", seconds=seconds)
            w = wrk(f"http://127.0.0.1:{wrapped_port}/ping", seconds=seconds)
            if b is None or w is None:
                break
            bare_rps.append(b)
            wrapped_rps.append(w)
    if bare_rps:
        ratio = median(wrapped_rps) / median(bare_rps)
        rows.append(["wrk -c50, uvicorn+uvloop+httptools", f"{median(bare_rps):,.0f} rps",
                     f"{median(wrapped_rps):,.0f} rps", f"{ratio:.3f} (target >= 0.95)"])  # fmt: skip
    else:
        rows.append(["wrk not installed (apt-get install wrk)", "-", "-", "-"])
    rows.append(["in-process ASGI call", f"{median(bare_s) * 1e6:.1f} µs", f"{median(wrapped_s) * 1e6:.1f} µs",
                 f"+{added_us:.2f} µs per request"])  # fmt: skip
    table("(a) host route through the middleware vs the bare host app",
          ["measure", "bare", "with tidegate", "ratio / added"], rows)  # fmt: skip


async def _c64(config_path: Path, sim_url: str, n: int) -> tuple[list[float], list[float], float, float]:
    """c=64 through a gateway served from ``config_path``: latencies, overheads, rps, direct rps."""
    port = free_port()
    own: list[float] = []
    with process(uvicorn_cmd("tests.bench._apps:wrapped", port), ready_url=f"http://127.0.0.1:{port}",
                 env={"TIDEGATE_BENCH_CONFIG": str(config_path)}):  # fmt: skip
        via, rps = await latencies(f"http://127.0.0.1:{port}/ai/v1/chat/completions", BODY, n=n,
                                   concurrency=64, overheads=own)  # fmt: skip
    _, direct_rps = await latencies(sim_url + "/chat/completions", BODY, n=n, concurrency=64)
    return via, own, rps, direct_rps


async def chat(config_path: Path, sim_url: str, quick: bool, unpaced_path: Path | None = None) -> None:
    app_port = free_port()
    env = {"TIDEGATE_BENCH_CONFIG": str(config_path)}
    direct_url = sim_url + "/chat/completions"
    rows = []
    with process(uvicorn_cmd("tests.bench._apps:wrapped", app_port), ready_url=f"http://127.0.0.1:{app_port}", env=env):
        via_url = f"http://127.0.0.1:{app_port}/ai/v1/chat/completions"
        for concurrency, n in ((1, 400 if quick else 2000), (64, 1000 if quick else 6000)):
            direct: list[float] = []
            via: list[float] = []
            direct_rps, via_rps = [], []
            own: list[float] = []
            for _ in range(2):
                d, drps = await latencies(direct_url, BODY, n=n // 2, concurrency=concurrency)
                v, vrps = await latencies(via_url, BODY, n=n // 2, concurrency=concurrency, overheads=own)
                direct += d
                via += v
                direct_rps.append(drps)
                via_rps.append(vrps)
            added50 = (pct(via, 0.5) - pct(direct, 0.5)) * 1000
            added99 = (pct(via, 0.99) - pct(direct, 0.99)) * 1000
            rows.append([f"c={concurrency} over HTTP", f"{pct(direct, 0.5) * 1000:.3f} / {pct(direct, 0.99) * 1000:.3f}",
                         f"{pct(via, 0.5) * 1000:.3f} / {pct(via, 0.99) * 1000:.3f}",
                         f"+{added50:.3f} / +{added99:.3f}",
                         f"{pct(own, 0.5):.3f} / {pct(own, 0.99):.3f}",
                         f"{median(direct_rps):,.0f} → {median(via_rps):,.0f}"])  # fmt: skip

    if unpaced_path is not None:  # the same c=64 run with `turn_budget: null` and with the default
        n64 = 1000 if quick else 4000
        off, off_own, off_rps, off_direct = await _c64(unpaced_path, sim_url, n64)
        on, on_own, on_rps, on_direct = await _c64(config_path, sim_url, n64)
        for label, via, own, rps, drps in (("c=64, turn_budget off", off, off_own, off_rps, off_direct),
                                           ("c=64, turn_budget 1ms", on, on_own, on_rps, on_direct)):  # fmt: skip
            rows.append([label, "-", f"{pct(via, 0.5) * 1000:.3f} / {pct(via, 0.99) * 1000:.3f}", "-",
                         f"{pct(own, 0.5):.3f} / {pct(own, 0.99):.3f}", f"{drps:,.0f} → {rps:,.0f}"])  # fmt: skip

    # In-process: host code calling gateway.chat() vs the same call made directly with aiohttp.
    config = parse_config({"models": {"light": {"url": sim_url}}})
    n = 400 if quick else 2000
    async with Gateway(config) as gateway, aiohttp.ClientSession() as client:
        messages = BODY["messages"]
        direct, via = [], []
        for _ in range(50):
            await gateway.chat(messages, model="light", max_tokens=16)  # type: ignore[arg-type]
        for _ in range(2):
            for _ in range(n // 2):
                started = time.perf_counter()
                async with client.post(direct_url, json=BODY) as resp:
                    await resp.json()
                direct.append(time.perf_counter() - started)
            for _ in range(n // 2):
                started = time.perf_counter()
                await gateway.chat(messages, model="light", max_tokens=16)  # type: ignore[arg-type]
                via.append(time.perf_counter() - started)
    rows.append(["c=1 in-process gateway.chat()", f"{pct(direct, 0.5) * 1000:.3f} / {pct(direct, 0.99) * 1000:.3f}",
                 f"{pct(via, 0.5) * 1000:.3f} / {pct(via, 0.99) * 1000:.3f}",
                 f"{(pct(via, 0.5) - pct(direct, 0.5)) * 1000:+.3f} / {(pct(via, 0.99) - pct(direct, 0.99)) * 1000:+.3f}",
                 "-", "-"])  # fmt: skip
    print("\n  'added' includes the extra HTTP hop (server parse + aiohttp client call); 'own time' is"
          " X-Tidegate-Overhead-Ms, the time spent in tidegate's code (total minus upstream wait; with a"
          " turn budget it includes waiting for a loop turn, which without one hides in upstream time).")
    table("(b) chat completion via tidegate vs calling the simulator directly (ms; target +0.5 p50 / +2 p99 at c=1)",
          ["mode", "direct p50 / p99", "via tidegate p50 / p99", "added p50 / p99",
           "tidegate's own time p50 / p99", "rps direct → via"], rows)  # fmt: skip


def import_time() -> None:
    """`import tidegate` in a fresh interpreter (median of 5), against `import asyncio` alone."""
    import statistics
    import subprocess

    def cumulative(module: str) -> float:
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             capture_output=True, text=True, check=True).stderr  # fmt: skip
        last = [line for line in out.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        return int(last.split("|")[1]) / 1000

    ours = statistics.median(cumulative("tidegate") for _ in range(5))
    base = statistics.median(cumulative("asyncio") for _ in range(5))
    table("import cost (python -X importtime; target < 300 ms, no network at import)",
          ["module", "ms"], [["asyncio (baseline)", f"{base:.0f}"], ["tidegate", f"{ours:.0f}"]])  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "bench.yaml"
        config_path.write_text(f"models:\n  light: {{url: '{sim_url}', max_concurrency: 128}}\n")
        unpaced_path = Path(tmp) / "unpaced.yaml"
        unpaced_path.write_text(config_path.read_text() + "turn_budget: null\n")
        print("tidegate foundation benchmark (upstream: the LLM simulator, not a model)")
        import_time()
        await passthrough(config_path, args.quick)
        with process(simulator_cmd(sim_port), ready_url=sim_url):
            await chat(config_path, sim_url, args.quick, unpaced_path)


if __name__ == "__main__":
    asyncio.run(main())
