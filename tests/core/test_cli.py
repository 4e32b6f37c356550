from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tidegate.cli import main


def test_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("models:\n  a: {url: 'http://127.0.0.1:8001/v1'}\n")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_check_prints_every_issue_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("models:\n  a: {url: 'http://x/v1', timeot: 1s}\nprefx: /ai\n")
    result = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "check", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"Unknown field `timeot` - at `$.models.a` (did you mean `timeout`?) ({path})",
        f"Unknown field `prefx` - at `$` (did you mean `prefix`?) ({path})",
    ]


async def test_serve_wraps_a_host_app_and_stops_cleanly(tmp_path: Path, sim: object) -> None:
    import asyncio
    import os
    import signal
    import socket

    import aiohttp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "t.yaml"
    config.write_text(f"models:\n  light: {{url: '{sim.url}'}}\n")  # type: ignore[attr-defined]
    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tidegate.cli", "serve", str(config), "--app", "tests.bench._apps:bare",
        "--port", str(port), cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(200):
                try:
                    async with client.get(f"http://127.0.0.1:{port}/ping") as resp:
                        assert await resp.text() == "pong"
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            body = {"model": "light", "messages": [{"role": "user", "content": "hi"}]}
            async with client.post(f"http://127.0.0.1:{port}/ai/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert proc.stderr is not None
        errors = (await proc.stderr.read()).decode()
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too
    assert code in (0, -signal.SIGTERM), errors
    assert "Traceback" not in errors
