"""Workflow engine benchmark: latency under concurrency, per-node overhead, parallel fan-out.

(a) a 3-node workflow (start → template-transform → end) driven by 60 concurrent callers:
    p50/p95 latency and runs/s, in-process (no HTTP), against a baseline doing the same Jinja
    render directly in the same loop;
(b) engine overhead per node: a chain of N template nodes vs a chain of 1, per extra node in µs,
    against the bare render of the same templates (the work a node must do anyway);
(c) a 10-branch fan-out where each branch is an LLM node waiting 200 ms on the simulator
    (a separate process): wall time / slowest branch (1.0 = perfectly parallel; target <= 1.2).

    python tests/bench/bench_engine.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, median, pct, process, simulator_cmd, table

from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.engine import RunLimits, Services, WorkflowRunner, compile_workflow
from tidegate.engine.template import JinjaTemplate, make_jinja_env


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "custom", "position": {"x": 0, "y": 0},
            "data": {"type": node_type, "title": node_id, **data}}  # fmt: skip


def edge(source: str, target: str) -> dict[str, Any]:
    return {"id": f"{source}-{target}", "source": source, "sourceHandle": "source", "target": target}


def dsl(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {"app": {"name": "bench", "mode": "workflow"}, "kind": "app", "version": "0.6.0",
            "workflow": {"graph": {"nodes": nodes, "edges": edges}}}  # fmt: skip


def chain_dsl(length: int) -> dict[str, Any]:
    start = node("start", "start", variables=[{"variable": "name", "label": "name", "type": "text-input"}])
    nodes = [start]
    previous = ["start", "name"]
    for index in range(length):
        nodes.append(node(f"t{index}", "template-transform", template="Hello {{ v }}!",
                          variables=[{"variable": "v", "value_selector": previous}]))  # fmt: skip
        previous = [f"t{index}", "output"]
    nodes.append(node("end", "end", outputs=[{"variable": "out", "value_selector": previous}]))
    ids = ["start", *(f"t{i}" for i in range(length)), "end"]
    return dsl(nodes, [edge(a, b) for a, b in itertools.pairwise(ids)])


async def concurrent(call: Any, *, n: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, n / (time.perf_counter() - started)


async def bench_three_nodes(n: int) -> None:
    runner = WorkflowRunner(compile_workflow(chain_dsl(1)), stream=False)
    template = JinjaTemplate("Hello {{ v }}!", [("v", ("start", "name"))], make_jinja_env())

    async def engine_run() -> None:
        result = await runner.run_blocking({"name": "bench"})
        assert result.status == "succeeded"

    async def baseline() -> None:
        template.render_inline({"v": "bench"})
        await asyncio.sleep(0)

    for _ in range(200):
        await engine_run()
    rows = []
    for label, call in (("baseline (direct render)", baseline), ("engine run", engine_run)):
        lat, rate = await concurrent(call, n=n, concurrency=60)
        rows.append([label, f"{median(lat) * 1000:.2f}", f"{pct(lat, 0.95) * 1000:.2f}", f"{rate:,.0f}"])
    table("(a) start → template → end, 60 concurrent callers, in-process (target p95 < 50 ms)",
          ["", "p50 ms", "p95 ms", "runs/s"], rows)


async def bench_three_nodes_http(n: int) -> None:
    """The same workflow through the Dify surface over HTTP (uvicorn process), 60 concurrent clients,
    against the host app's own route on the same server (what the HTTP stack alone costs)."""
    import tempfile

    import aiohttp
    import yaml
    from _harness import uvicorn_cmd

    with tempfile.TemporaryDirectory() as tmp:
        flow = Path(tmp) / "hello.yml"
        flow.write_text(yaml.safe_dump(chain_dsl(1)))
        config = Path(tmp) / "bench.yaml"
        config.write_text(f"workflows:\n  hello: {{file: '{flow}', api_keys: [app-bench]}}\n")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with process(uvicorn_cmd("tests.bench._apps:wrapped", port), ready_url=base,
                     env={"TIDEGATE_BENCH_CONFIG": str(config)}):  # fmt: skip
            connector = aiohttp.TCPConnector(limit=60)
            async with aiohttp.ClientSession(connector=connector) as client:
                body = {"inputs": {"name": "bench"}, "response_mode": "blocking", "user": "u1"}
                headers = {"Authorization": "Bearer app-bench"}

                async def run() -> None:
                    async with client.post(base + "/ai/v1/workflows/run", json=body, headers=headers) as resp:
                        data = await resp.json()
                        assert resp.status == 200 and data["data"]["status"] == "succeeded", data

                async def ping() -> None:
                    async with client.get(base + "/ping") as resp:
                        await resp.read()

                for _ in range(200):
                    await run()
                rows = []
                for label, call in (("host route GET /ping (baseline)", ping), ("POST /ai/v1/workflows/run", run)):
                    lat, rate = await concurrent(call, n=n, concurrency=60)
                    rows.append([label, f"{median(lat) * 1000:.2f}", f"{pct(lat, 0.95) * 1000:.2f}", f"{rate:,.0f}"])
    table("(a') the same workflow through the Dify surface over HTTP, 60 concurrent clients (target p95 < 50 ms)",
          ["", "p50 ms", "p95 ms", "runs/s"], rows)  # fmt: skip


async def bench_per_node(repeats: int) -> None:
    long, short = 50, 1
    runners = {k: WorkflowRunner(compile_workflow(chain_dsl(k)), stream=False) for k in (short, long)}
    template = JinjaTemplate("Hello {{ v }}!", [("v", ("start", "name"))], make_jinja_env())

    async def timed(k: int) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            await runners[k].run_blocking({"name": "x"})
        return (time.perf_counter() - started) / repeats

    await timed(long)
    samples = []
    for _ in range(5):  # alternate so drift hits both sides alike
        samples.append((await timed(long) - await timed(short)) / (long - short))
    per_node = median(samples)
    started = time.perf_counter()
    for _ in range(repeats * long):
        template.render_inline({"v": "x"})
    render = (time.perf_counter() - started) / (repeats * long)
    table("(b) engine overhead per node (chain of 50 vs chain of 1)", ["", "µs per node", "ratio"], [
        ["bare template render (baseline)", f"{render * 1e6:.1f}", "1.0"],
        ["engine, per template node", f"{per_node * 1e6:.1f}", f"{per_node / render:.1f}"],
        ["engine overhead beyond the render", f"{(per_node - render) * 1e6:.1f}", ""],
    ])  # fmt: skip


async def bench_fan_out(sim_url: str, rounds: int) -> None:
    config = parse_config({"models": {"slow": {"url": sim_url, "model": "sim-small", "max_concurrency": 64,
                                               "headers": {"X-Sim-TTFT-Ms": "200", "X-Sim-Tokens": "4"}}}})
    branches = 10
    model = {"provider": "openai", "name": "slow", "mode": "chat", "completion_params": {}}
    nodes = [node("start", "start", variables=[])]
    edges = []
    for index in range(branches):
        nodes.append(node(f"llm{index}", "llm", model=model, context={"enabled": False},
                          prompt_template=[{"role": "user", "text": f"branch {index}"}]))  # fmt: skip
        edges += [edge("start", f"llm{index}"), edge(f"llm{index}", "end")]
    nodes.append(node("end", "end", outputs=[{"variable": f"o{i}", "value_selector": [f"llm{i}", "text"]}
                                             for i in range(branches)]))  # fmt: skip
    async with Gateway(config) as gateway:
        runner = WorkflowRunner(compile_workflow(dsl(nodes, edges)), services=Services(llm=gateway),
                                limits=RunLimits(timeout=30), stream=False)
        ratios, walls, slowest = [], [], []
        for _ in range(rounds):
            started = time.perf_counter()
            events = [event async for event in runner.run({})]
            wall = time.perf_counter() - started
            assert events[-1].status == "succeeded", events[-1].error
            branch = max(e.elapsed_time for e in events if e.kind == "node_finished" and e.node_id.startswith("llm"))
            walls.append(wall)
            slowest.append(branch)
            ratios.append(wall / branch)
    table("(c) 10 LLM branches, each waiting 200 ms on the simulator (target wall/slowest <= 1.2)",
          ["", "wall ms", "slowest branch ms", "wall / slowest"], [
              ["median of runs", f"{median(walls) * 1000:.0f}", f"{median(slowest) * 1000:.0f}",
               f"{median(ratios):.3f}"],
              ["serial execution would be", f"{sum([0.2] * branches) * 1000:.0f}", "200", f"{branches:.1f}"],
          ])  # fmt: skip


async def main(quick: bool) -> None:
    await bench_three_nodes(2_000 if quick else 10_000)
    await bench_three_nodes_http(1_000 if quick else 5_000)
    await bench_per_node(20 if quick else 100)
    port = free_port()
    with process(simulator_cmd(port), ready_url=f"http://127.0.0.1:{port}"):
        await bench_fan_out(f"http://127.0.0.1:{port}/v1", 5 if quick else 20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main(args.quick))
