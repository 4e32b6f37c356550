"""What each host adapter costs: the same OpenAI chat request through every host, one simulator.

Hosts are the conformance suite's apps (raw ASGI, Starlette, FastAPI under uvicorn with uvloop +
httptools; Flask under waitress), each in its own process, all against one simulator process.
Rounds alternate hosts so drift on a shared machine hits them alike; ratios are to the raw ASGI
host measured in the same run. c=1 shows the per-request latency a host adds; c=32 shows
throughput (the Flask figure includes the WSGI thread pool and the thread ↔ loop crossing).

    python tests/bench/bench_hosts.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    ROOT,
    free_port,
    latencies,
    median,
    pct,
    process,
    simulator_cmd,
    table,
    uvicorn_cmd,
    wsgi_cmd,
)

BODY = {"model": "light", "messages": [{"role": "user", "content": "How do I get a refund?"}], "max_tokens": 16}
APPS = "tidegate_conformance.apps"
HOSTS = [
    ("asgi", uvicorn_cmd, f"{APPS}.asgi_app:app"),
    ("starlette", uvicorn_cmd, f"{APPS}.starlette_app:app"),
    ("fastapi", uvicorn_cmd, f"{APPS}.fastapi_app:app"),
    ("flask", wsgi_cmd, f"{APPS}.flask_app:app"),
]


async def measure(urls: dict[str, str], concurrency: int, n: int, rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """Latencies and throughputs per host; each round starts at the next host, so every host
    takes every position in the order (the first runs after a pause, the last after the rest)."""
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in urls}
    names = list(urls)
    for index in range(rounds):
        for name in names[index % len(names):] + names[: index % len(names)]:
            lat, rps = await latencies(urls[name], BODY, n=n, concurrency=concurrency)
            results[name][0].extend(lat)
            results[name][1].append(rps)
    return results


def rows_for(results: dict[str, tuple[list[float], list[float]]]) -> list[list[str]]:
    base_lat, base_rps = results["asgi"]
    rows = []
    for name, (lat, rps) in results.items():
        rows.append([
            name, f"{median(rps):,.0f}", f"{pct(lat, 0.5) * 1000:.2f}", f"{pct(lat, 0.99) * 1000:.2f}",
            f"{median(rps) / median(base_rps):.2f}", f"{pct(lat, 0.5) / pct(base_lat, 0.5):.2f}",
            f"{pct(lat, 0.99) / pct(base_lat, 0.99):.2f}",
        ])  # fmt: skip
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    args = parser.parse_args()
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    pythonpath = os.pathsep.join([str(ROOT / "conformance"), str(ROOT), str(ROOT / "src")])
    header = ["host", "rps", "p50 ms", "p99 ms", "rps ratio", "p50 ratio", "p99 ratio"]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        config = Path(tmp) / "hosts.yaml"
        config.write_text(f"prefix: /ai\nmodels:\n  light: {{url: '{sim_url}', max_concurrency: 128}}\n")
        env = {"TIDEGATE_CONFIG": str(config), "PYTHONPATH": pythonpath}
        stack.enter_context(process(simulator_cmd(sim_port), ready_url=sim_url))
        urls = {}
        for name, command, app in HOSTS:
            port = free_port()
            stack.enter_context(process(command(app, port), ready_url=f"http://127.0.0.1:{port}", env=env))
            urls[name] = f"http://127.0.0.1:{port}/ai/v1/chat/completions"
        print("tidegate host adapters benchmark (upstream: the LLM simulator, not a model)")
        rounds = 4 if args.quick else 8
        serial = await measure(urls, 1, 50 if args.quick else 200, rounds)
        table("c=1: one request at a time (ratios to the raw ASGI host)", header, rows_for(serial))
        loaded = await measure(urls, 32, 200 if args.quick else 800, rounds)
        table("c=32: throughput (Flask: waitress, 32 threads)", header, rows_for(loaded))


if __name__ == "__main__":
    asyncio.run(main())
