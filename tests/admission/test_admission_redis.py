"""Shared limits through a real Redis server: two processes, one budget.

Needs the ``redis-server`` binary (Debian package ``redis-server``) and the async Redis client
(``pip install 'limits[async-redis]'``, i.e. coredis); skipped with the reason when either is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidegate.errors import RateLimited

from .admission_support import info, running

pytestmark = [
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server not installed (apt-get install redis-server)",
    ),
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("coredis") is None,
        reason="coredis not installed (pip install 'limits[async-redis]')",
    ),
]

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    from prometheus_client import CollectorRegistry
    from tidegate.admission import Admission, RequestInfo
    from tidegate.config.admission import AdmissionSection
    from tidegate.config.loader import convert_section
    from tidegate.errors import RateLimited

    url, mode, sync_dir, parties = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    cfg = convert_section(
        {
            "limits": [
                {"name": "per-ip", "key": "ip", "requests": "10/minute"},
                {"name": "budget", "key": "api_key", "tokens": "5000/minute"},
            ],
            "admission": {"storage": url, "key_prefix": "test"},
        },
        AdmissionSection,
        "$",
    )
    key = "req" if mode == "requests" else "tok"

    async def barrier(name):
        # Every process reaches this point before any goes on (files in a shared folder).
        (sync_dir / f"{name}.{os.getpid()}").touch()
        deadline = time.monotonic() + 30
        while len(list(sync_dir.glob(f"{name}.*"))) < parties:
            assert time.monotonic() < deadline, f"barrier {name} timed out"
            await asyncio.sleep(0.005)

    async def one(admission, ip, est):
        try:
            ticket = await admission.admit(
                RequestInfo(client_ip=ip, api_key_name=key, est_tokens=est)
            )
        except RateLimited:
            return None
        return ticket

    async def main():
        admission = Admission(cfg, registry=CollectorRegistry())
        await admission.start()
        await barrier("ready")  # all processes hit Redis together
        if mode == "requests":
            tickets = [await one(admission, "203.0.113.1", 1) for _ in range(15)]
        elif mode == "tokens":
            ips = [f"198.51.100.{n}" for n in range(20)]
            tickets = await asyncio.gather(*(one(admission, ip, 400) for ip in ips))
        else:  # "big": one large request from a fresh address
            tickets = [await one(admission, "192.0.2.200", 3000)]
        admitted = [t for t in tickets if t is not None]
        await barrier("admitted")  # no refund may free budget while another still admits
        for ticket in admitted:
            await ticket.reconcile(100)
            ticket.release()
        await admission.close()
        print(json.dumps({"admitted": len(admitted)}))

    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not ping(port):
            assert server.poll() is None, "redis-server exited at startup"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.05)
        yield f"async+redis://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_workers(tmp_path: Path, url: str, mode: str, count: int) -> list[int]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    sync_dir = tmp_path / f"sync-{mode}"
    sync_dir.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, mode, str(sync_dir), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1])["admitted"])
    return results


def test_two_processes_share_limits(tmp_path: Path, redis_url: str) -> None:
    # Requests: 10/minute for one address, 15 attempts in each process.
    counts = run_workers(tmp_path, redis_url, "requests", 2)
    assert sum(counts) == 10
    # Tokens: 5000/minute for one key; 20 concurrent 400-token reservations per process.
    counts = run_workers(tmp_path, redis_url, "tokens", 2)
    assert sum(counts) == 12  # 12 × 400 = 4800 <= 5000 < 13 × 400: no overshoot across processes
    # Every admitted request reconciled to 100 tokens: 1,200 used, so 3,000 more now fit in a
    # third process — it would not without the refunds (4,800 + 3,000 > 5,000).
    assert run_workers(tmp_path, redis_url, "big", 1) == [1]


async def test_concurrent_burst_over_redis_stays_within_the_limit(redis_url: str) -> None:
    async with running(
        limits=[
            {"key": "api_key", "tokens": "10000/minute"},
            {"key": "ip", "requests": "5/second", "burst": 3},
        ],
        admission={"storage": redis_url, "key_prefix": "burst"},
    ) as admission:

        async def one(n: int) -> int:
            try:
                ticket = await admission.admit(
                    info(api_key_name="k", client_ip=f"192.0.2.{n}", est_tokens=700)
                )
            except RateLimited:
                return 0
            ticket.release()
            return ticket.reserved_tokens

        reserved = await asyncio.gather(*(one(n) for n in range(60)))
        assert sum(reserved) <= 10_000
        assert sum(1 for r in reserved if r) == 10_000 // 700
        # Burst on shared storage: 3 at once for one address, then refused.
        results = []
        for _ in range(5):
            try:
                (
                    await admission.admit(info(api_key_name="other", client_ip="203.0.113.50"))
                ).release()
                results.append(True)
            except RateLimited:
                results.append(False)
        assert results == [True, True, True, False, False]


async def test_storage_outage_fails_open_by_default(tmp_path: Path) -> None:
    from tidegate.errors import Overloaded

    from .admission_support import sample

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while not ping(port):
            assert server.poll() is None
            await asyncio.sleep(0.05)
        url = f"async+redis://127.0.0.1:{port}"
        rules = [{"key": "ip", "requests": "100/minute"}]
        async with (
            running(limits=rules, admission={"storage": url}) as lenient,
            running(limits=rules, admission={"storage": url, "fail_open": False}) as strict,
        ):
            (await lenient.admit(info())).release()
            (await strict.admit(info())).release()
            server.terminate()
            server.wait(timeout=10)
            (
                await lenient.admit(info())
            ).release()  # admitted: the outage is not the client's fault
            assert sample(lenient, "tidegate_admission_storage_errors_total") >= 1
            with pytest.raises(Overloaded, match="storage unavailable"):
                await strict.admit(info())
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
