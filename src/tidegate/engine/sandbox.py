"""The code sandbox: user code (code nodes, looping Jinja templates) runs in worker processes.

Workers are fresh interpreters (``python -I``: no user site, no inherited environment, an empty
working directory, their own session) that fork a limited child per job — see
``_sandbox_worker.py``. Nothing of the host process is reachable from them: no shared memory,
no inherited descriptors beyond two pipes. Every wait is bounded: the worker enforces wall time on
its child and the host enforces it again on the worker, killing the whole process group on
overrun or when the waiting node is cancelled, so a stuck job never holds a task or a slot.

JavaScript runs in a ``node`` child per job with its heap capped and CPU time limited; without a
``node`` binary on PATH, JavaScript code nodes are refused when the DSL loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..errors import UsageError
from .nodes.base import NodeFailure

__all__ = ["CodeLimits", "CodeSandbox"]

_HEADER = struct.Struct(">I")
_MARKER = b"\n<<TIDEGATE-RESULT>>"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

_JS_WRAPPER = r"""
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  let reply;
  try {
    const main = new Function(job.code + '\n;return typeof main === "function" ? main : undefined;')();
    if (typeof main !== 'function') throw new ReferenceError('the code must define a function `main`');
    let result = main(job.inputs);
    if (result && typeof result.then === 'function') result = await result;
    if (result === null || typeof result !== 'object' || Array.isArray(result)) {
      throw new TypeError('main() must return an object');
    }
    reply = {ok: true, result};
  } catch (e) {
    reply = {ok: false, type: (e && e.name) || 'Error', error: String((e && e.message) || e)};
  }
  process.stdout.write('\n<<TIDEGATE-RESULT>>' + JSON.stringify(reply));
});
"""


class CodeLimits(msgspec.Struct, frozen=True, kw_only=True):
    cpu_time: float = 5.0
    wall_time: float = 10.0
    memory: int = 256 * 1024 * 1024
    max_output: int = 1024 * 1024


class _Worker:
    __slots__ = ("proc",)

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def call(self, job: dict[str, Any], wait: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        body = _encode(job)
        self.proc.stdin.write(_HEADER.pack(len(body)) + body)
        async with asyncio.timeout(wait):
            await self.proc.stdin.drain()
            return await _read_frame(self.proc.stdout)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()


async def _read_frame(stream: asyncio.StreamReader) -> dict[str, Any]:
    header = await stream.readexactly(_HEADER.size)
    body = await stream.readexactly(_HEADER.unpack(header)[0])
    result = _decode(body)
    if not isinstance(result, dict):
        raise NodeFailure("the code sandbox sent a malformed answer", error_type="SandboxError")
    return result


class CodeSandbox:
    """A bounded pool of sandbox workers, owned by the Gateway (``start()`` / ``close()``)."""

    def __init__(
        self,
        *,
        workers: int = 2,
        limits: CodeLimits | None = None,
        python: str | None = None,
        node: str | None = None,
    ) -> None:
        self.limits = limits or CodeLimits()
        self.max_workers = max(1, workers)
        self.python = python or sys.executable
        self.node = node if node is not None else shutil.which("node")
        self.state: Literal["unopened", "open", "closed"] = "unopened"
        self._source = Path(__file__).with_name("_sandbox_worker.py").read_text(encoding="utf-8")
        self._slots = asyncio.Semaphore(self.max_workers)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._jobs: set[asyncio.subprocess.Process] = set()
        self._home: str | None = None

    def __repr__(self) -> str:
        return f"CodeSandbox(workers={self.max_workers}, state={self.state!r})"

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"CodeSandbox cannot start: it is {self.state}")
        self._home = tempfile.mkdtemp(prefix="tidegate-sandbox-")
        self.state = "open"

    async def close(self) -> None:
        self.state = "closed"
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        for worker in workers:
            await worker.kill()
        for proc in list(self._jobs):
            await _kill_process(proc)
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    async def __aenter__(self) -> CodeSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- jobs -------------------------------------------------------------------------------------

    async def run_python(
        self, code: str, inputs: dict[str, Any], *, limits: CodeLimits | None = None
    ) -> dict[str, Any]:
        reply = await self._job({"op": "python", "code": code, "inputs": inputs}, limits or self.limits)
        result = reply.get("result")
        if not isinstance(result, dict):
            raise NodeFailure("main() must return a dict", error_type="TypeError")
        return result

    async def render_jinja(
        self, source: str, context: dict[str, Any], *, limits: CodeLimits | None = None
    ) -> str:
        reply = await self._job({"op": "jinja", "source": source, "context": context}, limits or self.limits)
        return str(reply.get("result", ""))

    async def run_javascript(
        self, code: str, inputs: dict[str, Any], *, limits: CodeLimits | None = None
    ) -> dict[str, Any]:
        self._check_open()
        if self.node is None:
            raise NodeFailure("JavaScript needs a `node` binary on PATH", error_type="SandboxError")
        limits = limits or self.limits
        heap = max(16, limits.memory // (1024 * 1024))
        async with self._slots:
            proc = await asyncio.create_subprocess_exec(
                self.node, f"--max-old-space-size={heap}", "-e", _JS_WRAPPER,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env=self._env(), cwd=self._home,
                start_new_session=True,
            )  # fmt: skip
            self._jobs.add(proc)
            try:
                cpu = max(1, int(limits.cpu_time + 0.999))
                with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                    resource.prlimit(proc.pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
                try:
                    async with asyncio.timeout(limits.wall_time):
                        out, _ = await proc.communicate(_encode({"code": code, "inputs": inputs}))
                except TimeoutError:
                    raise NodeFailure(
                        f"the code ran longer than {limits.wall_time:g}s", error_type="WallTimeExceeded"
                    ) from None
            finally:
                self._jobs.discard(proc)
                await _kill_process(proc)
        _, marker, tail = out.rpartition(_MARKER)
        if not marker:
            if proc.returncode is not None and proc.returncode < 0:
                sig = -proc.returncode
                if sig in (signal.SIGXCPU, signal.SIGKILL):
                    raise NodeFailure(f"the code used more than {limits.cpu_time:g}s of CPU time",
                                      error_type="CPUTimeExceeded")  # fmt: skip
            raise NodeFailure("the code exited without a result (out of memory?)", error_type="Crashed")
        if len(tail) > limits.max_output:
            raise NodeFailure(f"the result is larger than {limits.max_output} bytes", error_type="OutputTooLarge")
        reply = _decode(tail)
        if not reply.get("ok"):
            raise NodeFailure(str(reply.get("error")), error_type=str(reply.get("type") or "Error"))
        return dict(reply["result"])

    async def _job(self, job: dict[str, Any], limits: CodeLimits) -> dict[str, Any]:
        self._check_open()
        job.update(cpu=limits.cpu_time, wall=limits.wall_time, memory=limits.memory, max_output=limits.max_output)
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._spawn()
            self._busy.add(worker)
            healthy = False
            try:
                reply = await worker.call(job, limits.wall_time + 5.0)
                healthy = True
            except TimeoutError:
                raise NodeFailure(
                    f"the code ran longer than {limits.wall_time:g}s", error_type="WallTimeExceeded"
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
                raise NodeFailure("the code sandbox worker died", error_type="SandboxError") from None
            finally:
                self._busy.discard(worker)
                if healthy and worker.alive and self.state == "open":
                    self._idle.append(worker)
                else:
                    await asyncio.shield(worker.kill())
        if not reply.get("ok"):
            raise NodeFailure(str(reply.get("error")), error_type=str(reply.get("type") or "Error"))
        return reply

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            self.python, "-I", "-c", self._source,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env={**self._env(), "TIDEGATE_SANDBOX_PRELOAD_JINJA": "1"},
            cwd=self._home, start_new_session=True,
        )  # fmt: skip
        worker = _Worker(proc)
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                ready = await _read_frame(proc.stdout)
            if not ready.get("ready"):
                raise NodeFailure("the code sandbox worker did not start", error_type="SandboxError")
        except BaseException:
            await asyncio.shield(worker.kill())
            raise
        return worker

    def _env(self) -> dict[str, str]:
        return {"PATH": os.defpath, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": self._home or "/"}

    def _check_open(self) -> None:
        if self.state != "open":
            raise UsageError(f"CodeSandbox is {self.state}; start() it first")


async def _kill_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()
