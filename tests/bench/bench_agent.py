"""Agent benchmark: many concurrent agent sessions, each three tool rounds, on one event loop.

Every session asks the simulated model (in its own process, latency L) for a tool, runs it (an
async tool sleeping T = 100 ms) and repeats three times; a fourth model turn writes the answer.
One session's ideal wall time is therefore ``4·L + 3·T``; the issue's shorthand ``3·L + 3·T``
leaves the answer turn out and is printed for reference. Measured in the same run, interleaved
so machine noise hits every case alike (medians of ``--rounds``):

- ``baseline`` / ``baseline stream``: the same traffic without the agent layer (four
  ``gateway.chat`` / ``gateway.stream_chat`` calls with the same tool list and three 100 ms sleeps
  per session): what the gateway, the simulator and this machine cost on their own;
- ``agent run`` / ``agent stream``: N sessions through ``AgentRuntime.run`` / ``.stream``, each
  compared with the baseline of the same kind.

Reported: wall time of the slowest session vs the ideal (target <= 1.3x) and vs the baseline, and
event-loop lag from a ticker task that sleeps 5 ms: ``lag`` is how late it woke (what a user
feels), ``own`` the part of that lateness the loop spent running Python (the rest is the OS
giving the CPU to other processes, e.g. the simulator or other jobs on a shared box). Both with
a fixed model latency (every session in lockstep: the worst case for lag) and with ±20 % jitter.

    python tests/bench/bench_agent.py [--sessions 200] [--latency-ms 100] [--rounds 3] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import free_port, process, simulator_cmd, table

from tidegate import Gateway
from tidegate.agent import AgentFinished, AgentRuntime
from tidegate.config import parse_config
from tidegate.config.agents import AgentConfig, AgentsConfig

TOOL_SECONDS = 0.1
GOAL = "plan the trip: call:nap() call@2:nap() call@3:nap()"
TICK = 0.005


async def nap() -> str:
    """Rests a while (an I/O-bound tool: it never blocks the loop)."""
    await asyncio.sleep(TOOL_SECONDS)
    return "rested"


class LagMeter:
    """How late a 5 ms ticker wakes, and how much of that the loop spent on the CPU itself."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.own: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(TICK)
            late = max(0.0, loop.time() - before - TICK)
            self.lags.append(late)
            self.own.append(min(late, max(0.0, time.thread_time() - cpu - TICK)))

    def __enter__(self) -> LagMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def worst(self) -> tuple[float, float, float]:
        """p99 and max lateness, and the max of the loop's own share of it (ms)."""
        ordered = sorted(self.lags) or [0.0]
        return ordered[int(0.99 * (len(ordered) - 1))] * 1000, ordered[-1] * 1000, max(self.own, default=0.0) * 1000


Session = Callable[[int], Awaitable[None]]


def sessions_for(gateway: Gateway, runtime: AgentRuntime) -> dict[str, Session]:
    tools = [runtime.tools.get("nap").openai_spec]  # type: ignore[union-attr]
    messages = [{"role": "user", "content": GOAL}]

    async def baseline(index: int) -> None:
        for step in range(4):
            await gateway.chat(messages, model="light", tools=tools)
            if step < 3:
                await asyncio.sleep(TOOL_SECONDS)

    async def baseline_stream(index: int) -> None:
        for step in range(4):
            async for _ in gateway.stream_chat(messages, model="light", tools=tools,
                                               stream_options={"include_usage": True}):  # fmt: skip
                pass
            if step < 3:
                await asyncio.sleep(TOOL_SECONDS)

    async def agent_run(index: int) -> None:
        result = await runtime.run("planner", GOAL, user=f"user-{index}")
        assert result.status == "succeeded" and result.tool_calls == 3, result

    async def agent_stream(index: int) -> None:
        async for event in runtime.stream("planner", GOAL, user=f"user-{index}"):
            if isinstance(event, AgentFinished):
                assert event.result.status == "succeeded" and event.result.tool_calls == 3, event.result

    return {"baseline": baseline, "agent run": agent_run, "baseline stream": baseline_stream,
            "agent stream": agent_stream}  # fmt: skip


async def burst(session: Session, count: int) -> tuple[float, float, float, float]:
    """Wall seconds for ``count`` concurrent sessions, with lag p99, lag max and own lag max (ms).

    The sessions' tasks exist before the meter starts: creating them is this harness's work, not
    the gateway's. Their first steps all run in one loop turn, which the meter does see."""
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(session(i)) for i in range(count)]
    with LagMeter() as meter:
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    return (wall, *meter.worst())


async def configure(sim_url: str, **patch: object) -> None:
    async with aiohttp.ClientSession() as client, client.post(sim_url + "/sim/config", json=patch) as resp:
        resp.raise_for_status()


async def main(args: argparse.Namespace) -> None:
    latency = args.latency_ms / 1000
    ideal = 4 * latency + 3 * TOOL_SECONDS
    shorthand = 3 * latency + 3 * TOOL_SECONDS
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    with process(simulator_cmd(port, "--ttft", f"{args.latency_ms}ms", "--tokens", "12"), ready_url=sim_url):
        gateway = Gateway(parse_config({"models": {"light": {
            "url": sim_url + "/v1", "model": "sim", "timeout": "60s", "max_concurrency": 1024,
        }}, "turn_budget": None if args.turn_budget == "null" else args.turn_budget}))  # fmt: skip
        runtime = AgentRuntime(gateway, AgentsConfig())
        runtime.add_tool(nap, max_concurrency=4096)
        runtime.add_agent("planner", AgentConfig(model="light", tools=["nap"], max_steps=5, timeout=60.0))
        await gateway.start()
        await runtime.start()
        cases = sessions_for(gateway, runtime)
        rows: list[list[str]] = []
        verdicts: list[str] = []
        try:
            for session in cases.values():
                await burst(session, min(50, args.sessions))  # warm connections and code paths
            if not args.no_gc_freeze:  # as `tidegate serve` does once the app is loaded
                gc.collect()
                gc.freeze()
            alone = statistics.median([(await burst(cases["agent run"], 1))[0] for _ in range(5)])
            rows.append(["fixed", "1 agent run", f"{alone * 1000:.0f}", f"{alone / ideal:.2f}x", "-", "-", "-", "-", "-"])
            for label, jitter in (("fixed", 0.0), ("±20%", 0.2 * args.latency_ms)):
                await configure(sim_url, ttft_jitter=f"{jitter}ms", ttft_dist="uniform" if jitter else "fixed")
                samples: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in cases}
                for _ in range(args.rounds):
                    for name, session in cases.items():
                        samples[name].append(await burst(session, args.sessions))
                base_walls = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
                for name, runs in samples.items():
                    wall = base_walls[name]
                    base_wall = base_walls["baseline stream" if "stream" in name else "baseline"]
                    p99 = statistics.median(s[1] for s in runs)
                    lag = statistics.median(s[2] for s in runs)
                    own = statistics.median(s[3] for s in runs)
                    rows.append([label, f"{args.sessions} x {name}", f"{wall * 1000:.0f}", f"{wall / ideal:.2f}x",
                                 f"{wall / base_wall:.2f}x", f"{wall / shorthand:.2f}x", f"{p99:.1f}", f"{lag:.1f}",
                                 f"{own:.1f}"])  # fmt: skip
                    if not name.startswith("baseline"):
                        ok = wall / ideal <= 1.3 and lag < 10
                        verdicts.append(f"  {label} {name}: {wall / ideal:.2f}x ideal (target <= 1.3x), loop lag max "
                                        f"{lag:.1f} ms (p99 {p99:.1f}, own {own:.1f}; target < 10 ms): "
                                        f"{'ok' if ok else 'MISSED'}")  # fmt: skip
        finally:
            await runtime.close()
            await gateway.stop()
    table(
        f"Agent sessions: 3 tool rounds + answer; L={args.latency_ms:g} ms, T=100 ms, "
        f"{'uvloop' if args.uvloop else 'asyncio'}, turn_budget {args.turn_budget}, "
        f"{'no gc.freeze' if args.no_gc_freeze else 'gc.freeze() after start'}, median of {args.rounds}; "
        f"ideal 4L+3T = {ideal * 1000:.0f} ms",
        ["latency", "case", "wall ms", "vs ideal", "vs baseline", "vs 3L+3T", "lag p99 ms", "lag max ms", "own max ms"],
        rows,
    )
    print("\n".join(verdicts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="simulated model latency (time to first token)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run the gateway on uvloop, as `tidegate serve` does")
    parser.add_argument("--turn-budget", default="1ms", help="the gateway's `turn_budget` (`null`: no pacing)")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave startup objects to the collector (tidegate serve freezes them)")
    arguments = parser.parse_args()
    if arguments.uvloop:
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
