"""`make demo`: the simulator and the example host app on 127.0.0.1, a burst of chat requests, a summary.

Everything runs locally: the upstream is tidegate's built-in LLM simulator (not a model), the host
is examples/starlette_app.py served by uvicorn, and the load comes from this script.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "How do I get a refund for a damaged item?",
    "My parcel is three days late, what can I do?",
    "How do I recover my account if I lost my phone?",
    "Can I change the delivery address after ordering?",
    "How long does the warranty last on headphones?",
    "Why was my card charged twice?",
    "How do I cancel my subscription?",
    "Do you ship to Canada?",
    "Compare the extended warranty with the standard one, then work out step by step which is cheaper"
    " over three years if each repair costs $120 and I expect two repairs; show the calculation.",
    "Write a Python function that parses our order export CSV, groups refunds by month and explains"
    " why the totals might differ from the payment processor's report.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited early:\n{proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                async with client.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{what} did not become ready at {url}")


def progress(done: int, total: int, width: int = 40) -> None:
    """A bar redrawn in place on a terminal; a few milestone lines when output is a log."""
    filled = width * done // total
    bar = f"  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    if sys.stdout.isatty():
        sys.stdout.write("\r" + bar)
    elif done == total or done % max(1, total // 4) == 0:
        sys.stdout.write(bar + "\n")
    else:
        return
    sys.stdout.flush()


async def burst(base: str, total: int, concurrency: int) -> dict[str, object]:
    latencies: list[float] = []
    overheads: list[float] = []
    miss_overheads: list[float] = []
    errors: dict[str, int] = {}
    tiers: dict[str, int] = {}
    cache: dict[str, int] = {}
    done = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            index = queue.get_nowait()
            stream = index % 4 == 3
            body = {
                "model": ("auto", "light", "strong")[index % 3],
                "messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}],
                "stream": stream,
            }
            started = time.perf_counter()
            try:
                async with client.post(base + "/ai/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                    else:
                        status = resp.headers.get("cache-status", "")
                        kind = "miss" if "fwd=" in status else status.rsplit("detail=", 1)[-1] if "hit" in status else "none"
                        own = float(resp.headers.get("x-tidegate-overhead-ms", "nan"))
                        (miss_overheads if kind in ("miss", "none") else overheads).append(own)
                        cache[kind] = cache.get(kind, 0) + 1
                        if body["model"] == "auto" and kind in ("miss", "none"):
                            tier = resp.headers.get("x-tidegate-tier", "?")
                            tiers[tier] = tiers.get(tier, 0) + 1
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - started)
            done += 1
            progress(done, total)

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    return {"latencies": latencies, "overheads": overheads, "errors": errors, "elapsed": elapsed,
            "tiers": tiers, "cache": cache, "miss_overheads": miss_overheads}  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    sim_port, app_port = free_port(), free_port()
    env = {**os.environ, "SIM_URL": f"http://127.0.0.1:{sim_port}/v1", "PYTHONPATH": str(ROOT)}
    python = sys.executable
    print("tidegate demo: starting the LLM simulator (not a model) and the example Starlette app")
    sim = start([python, "-m", "tidegate.cli", "simulate", "--port", str(sim_port),
                 "--ttft", "40ms", "--ttft-jitter", "10ms", "--ttft-dist", "uniform", "--tps", "600"], env)  # fmt: skip
    app = start([python, "-m", "uvicorn", "examples.starlette_app:app", "--port", str(app_port),
                 "--log-level", "warning", "--no-access-log"], env)  # fmt: skip
    try:
        await wait_ready(f"http://127.0.0.1:{sim_port}/v1/models", sim, "simulator")
        base = f"http://127.0.0.1:{app_port}"
        await wait_ready(base + "/ai/healthz", app, "example app")
        print(f"  simulator  http://127.0.0.1:{sim_port}/v1   app  {base}   surfaces under {base}/ai")
        print(f"sending {args.requests} chat requests ({args.concurrency} concurrent; 1 in 4 streamed)")
        result = await burst(base, args.requests, args.concurrency)
        latencies = result["latencies"]
        overheads = [o for o in result["overheads"] if o == o]  # type: ignore[union-attr]
        errors = result["errors"]
        assert isinstance(latencies, list) and isinstance(errors, dict)
        elapsed = float(result["elapsed"])  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as client, client.get(base + "/ai/metrics") as resp:
            metrics = await resp.text()
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("tidegate_requests_total{") and 'endpoint="/v1/chat/completions"' in line
        )
        print("summary")
        print(f"  requests          {len(latencies)}  ({counted:.0f} counted by /ai/metrics)")
        print(f"  throughput        {len(latencies) / elapsed:.0f} req/s over {elapsed:.2f} s")
        print(f"  latency p50/p95   {pct(latencies, 0.5) * 1000:.1f} ms / {pct(latencies, 0.95) * 1000:.1f} ms")
        misses = result["miss_overheads"]
        assert isinstance(misses, list)
        print("  tidegate's own time per request (X-Tidegate-Overhead-Ms: total minus upstream time)")
        if overheads:
            print(f"    cache hits      p50 {statistics.median(overheads):.3f} ms, p95 {pct(overheads, 0.95):.3f} ms")
        if misses:
            print(f"    cache misses    p50 {statistics.median(misses):.3f} ms, p95 {pct(misses, 0.95):.3f} ms"
                  "  (includes embedding the question on CPU for the semantic cache)")  # fmt: skip
        print(f"  model: auto       routed by complexity to tiers {result['tiers']} (cache misses)")
        print(f"  cache             {result['cache']}  (Cache-Status: exact / semantic hits, misses)")
        print(f"  errors            {sum(errors.values())} {errors if errors else ''}")
        return 0 if not errors else 1
    finally:
        for proc in (app, sim):
            proc.send_signal(signal.SIGTERM)
        for proc in (app, sim):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("shut down the app and the simulator")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
