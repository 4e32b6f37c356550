"""Acceptance: the router under real failures of real upstream processes.

Two simulators; one is SIGKILLed mid-run (its breaker must open, traffic must fail over, and no
non-streamed client call may fail), comes back (its breaker must close again after the cooldown
and a successful probe); and a 30 % random 5xx rate on one deployment must leave >= 99.9 % of
client calls successful.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tidegate.config import ModelConfig, convert_section
from tidegate.config.routing import RoutingConfig
from tidegate.providers.upstream import Upstream
from tidegate.routing import Router

from .conftest import chat, cluster

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable,
        "-m",
        "tidegate.providers.simulator",
        "--port",
        str(port),
        "--ttft",
        "2ms",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_ready(port: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


async def load(router: Router, total: int, concurrency: int, on_done: Any = None) -> list[Any]:
    """Run ``total`` non-streamed calls ``concurrency`` at a time; returns outcomes (dict or error)."""
    outcomes: list[Any] = []
    queue = iter(range(total))

    async def worker() -> None:
        for index in queue:
            try:
                _, decision = await router.chat({**chat(f"question {index}"), "model": "pool"})
                outcomes.append(decision)
            except Exception as exc:  # the test counts these: none are allowed
                outcomes.append(exc)
            if on_done is not None:
                on_done(len(outcomes))

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return outcomes


async def test_killed_upstream_fails_over_with_zero_client_errors_then_recovers() -> None:
    ports = {"a": free_port(), "b": free_port()}
    routing = convert_section(
        {
            # Weighted, not least-latency: a latency balancer would simply stop picking the dead
            # deployment after its first failure, and this test wants the breaker to do the work.
            "tiers": [{"name": "pool", "models": ["a", "b"], "balance": "weighted"}],
            "breaker": {"failure_ratio": 0.5, "min_volume": 5, "window": "2s", "cooldown": "500ms"},
            "retry": {"attempts": 3, "backoff": {"min": "5ms", "max": "50ms"}, "deadline": "10s"},
        },
        RoutingConfig,
        "$.routing",
    )
    with processes() as procs:
        procs.extend(spawn(port) for port in ports.values())
        await asyncio.gather(*[wait_ready(port) for port in ports.values()])
        upstreams = {
            name: Upstream(
                name, ModelConfig(url=f"http://127.0.0.1:{port}/v1", model="sim-small", timeout=5.0)
            )  # type: ignore[arg-type]
            for name, port in ports.items()
        }
        for upstream in upstreams.values():
            await upstream.start()
        try:
            registry = CollectorRegistry()
            router = Router(routing, upstreams, registry=registry, rng=random.Random(1))
            killed = asyncio.Event()

            def kill_midway(done: int) -> None:
                if done == 150 and not killed.is_set():
                    procs[0].send_signal(signal.SIGKILL)
                    killed.set()

            outcomes = await load(router, 600, 16, kill_midway)
            errors = [o for o in outcomes if isinstance(o, Exception)]
            assert killed.is_set()
            assert errors == [], errors[:3]
            served = [o.model for o in outcomes]
            assert served[:150].count("a") > 20  # a really took traffic before it died
            assert served[-100:].count("a") == 0
            assert any(o.attempts > 1 for o in outcomes)  # some calls were rescued by failover
            opened = registry.get_sample_value(
                "tidegate_route_breaker_transitions_total", {"model": "a", "state": "open"}
            )
            assert opened is not None and opened >= 1
            assert router.deployments["a"].breaker.state in ("open", "half-open")

            # Recovery: same port, a probe after the cooldown closes the breaker again.
            procs.append(spawn(ports["a"]))
            await wait_ready(ports["a"])
            await asyncio.sleep(0.6)
            for _ in range(200):
                _, _decision = await router.chat({**chat("after"), "model": "pool"})
                if router.deployments["a"].breaker.state == "closed":
                    break
                await asyncio.sleep(0.05)
            assert router.deployments["a"].breaker.state == "closed"
            later = await load(router, 100, 8)
            assert not [o for o in later if isinstance(o, Exception)]
            assert sum(1 for o in later if o.model == "a") > 10  # traffic came back
            assert registry.get_sample_value("tidegate_route_breaker_state", {"model": "a"}) == 0
        finally:
            for upstream in upstreams.values():
                await upstream.close()


async def test_thirty_percent_5xx_on_one_deployment_keeps_999_success() -> None:
    routing = {
        "tiers": [{"name": "pool", "models": ["a", "b"], "balance": "weighted"}],
        "breaker": {"failure_ratio": 0.6, "min_volume": 20},
        "retry": {"attempts": 3, "backoff": {"min": "2ms", "max": "20ms"}},
    }
    sims = {"a": {"faults": {"500": 0.2, "503": 0.1}, "seed": 3}}
    async with cluster(routing, {"a": {}, "b": {}}, sims=sims) as c:
        outcomes = await load(c.router, 1500, 24)
        failures = [o for o in outcomes if isinstance(o, Exception)]
        assert len(outcomes) == 1500
        assert 1 - len(failures) / len(outcomes) >= 0.999
        faults = c.sims["a"].stats["faults_total"]
        assert faults > 0.2 * c.requests("a") > 50  # the fault rate really bit
        assert c.router.deployments["a"].breaker.state == "closed"  # 30 % < the 60 % trip ratio
