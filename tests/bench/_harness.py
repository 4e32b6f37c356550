"""Shared benchmark plumbing: server processes on free ports, wrk runs, latency loops, tables."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_apart(enabled: bool = True) -> set[int] | None:
    """CPUs for the servers a benchmark starts: the last one, away from this process's loop.

    The simulator stands in for a model server on another machine. Free to run anywhere, it ran
    on the CPU of the loop being measured between that loop's steps and left its caches cold. This
    process itself stays unpinned, so its worker threads still have every CPU. None when pinning
    is off, unsupported (not Linux) or there is only one CPU.
    """
    if not enabled or not hasattr(os, "sched_setaffinity"):
        return None
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        return None
    return {mine[-1]}


@contextmanager
def process(
    cmd: list[str], *, ready_url: str, env: dict[str, str] | None = None, cpus: set[int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` until the block ends, once ``ready_url`` accepts connections (on ``cpus``)."""
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", **(env or {})}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                with socket.create_connection(_host_port(ready_url), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd} not ready") from None
                time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _host_port(url: str) -> tuple[str, int]:
    match = re.match(r"https?://([^:/]+):(\d+)", url)
    assert match, url
    return match.group(1), int(match.group(2))


def uvicorn_cmd(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--log-level", "warning", "--no-access-log"]  # fmt: skip


def wsgi_cmd(app: str, port: int, *, threads: int = 32) -> list[str]:
    """A WSGI app under waitress (SIGTERM stops it cleanly); needs ``conformance/`` on PYTHONPATH."""
    return [sys.executable, "-m", "tidegate_conformance.wsgi", app, "--port", str(port),
            "--threads", str(threads)]  # fmt: skip


def simulator_cmd(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tidegate.cli", "simulate", "--port", str(port), *extra]


def wrk(url: str, *, seconds: int = 4, connections: int = 50) -> float | None:
    """Requests per second from wrk, or None when wrk is not installed (apt-get install wrk)."""
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else None


async def latencies(
    url: str, body: dict[str, object], *, n: int, concurrency: int, overheads: list[float] | None = None
) -> tuple[list[float], float]:
    """Per-request latencies (seconds) and throughput for ``n`` POSTs at ``concurrency``.

    When ``overheads`` is given, each response's ``X-Tidegate-Overhead-Ms`` is appended (ms).
    """
    results: list[float] = []
    remaining = n

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with client.post(url, json=body) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url} answered {resp.status}")
                if overheads is not None and "x-tidegate-overhead-ms" in resp.headers:
                    overheads.append(float(resp.headers["x-tidegate-overhead-ms"]))
            results.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        for _ in range(min(50, n)):  # warm the pool
            async with client.post(url, json=body) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return results, n / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
