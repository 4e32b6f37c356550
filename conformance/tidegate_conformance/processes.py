"""Server processes for the suite: the simulator and the hosts, on free ports of 127.0.0.1.

Real processes (not in-test servers) so each host runs exactly as a user would run it: its own
interpreter, its server's own lifespan / signal handling, and a clean exit to check at the end.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

__all__ = ["HostSpec", "ServerProcess", "exited_cleanly", "free_port", "simulator_command", "unclean_lines"]

PACKAGE_DIR = Path(__file__).resolve().parent
# What a clean stop never prints: tracebacks, leaked aiohttp sessions, destroyed pending tasks.
UNCLEAN = ("Traceback", "Unclosed client session", "Unclosed connector", "Task was destroyed",
           "Exception in", "ERROR")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def simulator_command(port: int) -> list[str]:
    return [sys.executable, "-m", "tidegate.cli", "simulate", "--host", "127.0.0.1", "--port", str(port)]


@dataclass(frozen=True)
class HostSpec:
    """A host to run the scenarios against: an ASGI app (served by uvicorn) or a WSGI app
    (served by waitress), named ``module:attribute``; ``requires`` are modules it imports."""

    name: str
    kind: Literal["asgi", "wsgi"]
    target: str
    requires: tuple[str, ...] = ()
    stopped_marker: str | None = None
    """A line the host prints (at log level info) once tidegate stopped, when it has one."""

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        """``name=asgi:module:attr`` or ``name=wsgi:module:attr`` (the ``--tidegate-host`` form)."""
        name, sep, rest = text.partition("=")
        kind, _, target = rest.partition(":")
        if not sep or kind not in ("asgi", "wsgi") or ":" not in target:
            raise ValueError(f"Expected `name=asgi|wsgi:module:attr`, got `{text}`")
        return cls(name=name, kind=kind, target=target)  # type: ignore[arg-type]

    def command(self, port: int, *, log_level: str = "warning") -> list[str]:
        if self.kind == "asgi":
            return [sys.executable, "-m", "uvicorn", self.target, "--host", "127.0.0.1",
                    "--port", str(port), "--log-level", log_level, "--no-access-log",
                    "--lifespan", "on", "--timeout-graceful-shutdown", "5"]  # fmt: skip
        return [sys.executable, "-m", "tidegate_conformance.wsgi", self.target,
                "--port", str(port), "--threads", "16", "--log-level", log_level]  # fmt: skip


@dataclass
class ServerProcess:
    """One server process; ``ready_path`` is polled until it answers 200."""

    name: str
    command: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> ServerProcess:
        """Start the process without waiting (so several can boot at once); see ``wait_ready``."""
        path = os.pathsep.join([str(PACKAGE_DIR.parent), str(self.cwd or Path.cwd()),
                                os.environ.get("PYTHONPATH", "")])  # fmt: skip
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **self.env}
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 45.0) -> ServerProcess:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", self.ready_path)
                    if conn.getresponse().status == 200:
                        return self
                finally:
                    conn.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> tuple[int | None, str]:
        """SIGTERM, wait, and return (exit code, output); SIGKILL (code None) if it hangs."""
        if self.proc is None:
            return None, ""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        text = self.output()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code, text

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def exited_cleanly(code: int | None) -> bool:
    """0, or death by the SIGTERM we sent *after* a graceful stop: uvicorn re-raises the signal it
    caught once shutdown completed, so its exit status is -SIGTERM by design."""
    return code in (0, -signal.SIGTERM)


def unclean_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(mark in line for mark in UNCLEAN)]
