"""The code sandbox's worker process (a zygote). Runs standalone: it must not import tidegate.

The host starts this file with ``python -I -c`` in a new session, scrubbed environment and empty
working directory, and talks to it over its stdin/stdout pipes with length-prefixed JSON frames.
For every job the zygote forks a child, which sets its own limits (CPU seconds, address space,
no file writes) and runs the user's code in a fresh namespace; the zygote waits for the child's
answer up to the wall-time limit and kills it past that. Each job therefore starts from the same
clean state, and a crash, an endless loop or a memory blow-up ends only that child.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct(">I")


def _read_exact(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return bytes(data)


def _write_frame(fd: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _child(job: dict[str, Any], out_fd: int) -> None:
    """Runs in the forked child: apply limits, run the job, write one frame, exit."""
    cpu = max(1, int(job.get("cpu", 5) + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = int(job.get("memory", 256 * 1024 * 1024))
    limit = _vm_bytes() + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    result: Any
    try:
        if job["op"] == "python":
            result = _run_python(job)
        elif job["op"] == "jinja":
            result = _render_jinja(job)
        else:
            raise ValueError("unknown job " + repr(job["op"]))
        reply = {"ok": True, "result": result}
        text = json.dumps(reply, ensure_ascii=False, allow_nan=False)
        if len(text) > int(job.get("max_output", 1024 * 1024)):
            reply = {"ok": False, "type": "OutputTooLarge",
                     "error": f"the result is larger than {job.get('max_output', 0)} bytes"}
    except MemoryError:
        reply = {"ok": False, "type": "MemoryError", "error": "the code exceeded its memory limit"}
    except BaseException as exc:
        reply = {"ok": False, "type": type(exc).__name__, "error": _format_error(exc)}
    try:
        _write_frame(out_fd, reply)
    except BaseException:
        pass
    os._exit(0)


def _format_error(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(tb):
        if frame.filename == "<code>":
            where = f" (line {frame.lineno})"
            break
    return "".join(lines).strip() + where


def _run_python(job: dict[str, Any]) -> dict[str, Any]:
    import io

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    captured = io.StringIO()
    sys.stdout = captured
    sys.stderr = captured
    exec(compile(job["code"], "<code>", "exec"), namespace)
    main = namespace.get("main")
    if not callable(main):
        raise NameError("the code must define a function `main`")
    result = main(**job.get("inputs", {}))
    if not isinstance(result, dict):
        raise TypeError(f"main() must return a dict, got {type(result).__name__}")
    json.dumps(result, ensure_ascii=False, allow_nan=False)  # non-JSON values fail here, in the child
    return result


_JINJA_ENV: Any = None


def _jinja_env() -> Any:
    global _JINJA_ENV
    if _JINJA_ENV is None:
        from jinja2.exceptions import SecurityError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        class Env(ImmutableSandboxedEnvironment):
            intercepted_binops = frozenset({"*", "**"})

            def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
                if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
                    raise SecurityError("exponent too large in template")
                if operator == "*":
                    for seq, times in ((left, right), (right, left)):
                        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                            if len(seq) * times > 1_000_000:
                                raise SecurityError("template tried to build a value over 1,000,000 items")
                return super().call_binop(context, operator, left, right)

        _JINJA_ENV = Env(autoescape=False, keep_trailing_newline=True)
    return _JINJA_ENV


def _render_jinja(job: dict[str, Any]) -> str:
    return str(_jinja_env().from_string(job["source"]).render(job.get("context", {})))


def _serve(in_fd: int, out_fd: int) -> None:
    while True:
        header = _read_exact(in_fd, _HEADER.size)
        if header is None:
            return
        body = _read_exact(in_fd, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            reply = _run_job(json.loads(body), (in_fd, out_fd))
        except Exception as exc:  # the zygote itself must never die of a job
            reply = {"ok": False, "type": "SandboxError", "error": f"sandbox failure: {exc}"}
        _write_frame(out_fd, reply)


def _run_job(job: dict[str, Any], private_fds: tuple[int, int]) -> dict[str, Any]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        for fd in private_fds:
            os.close(fd)
        _child(job, write_fd)
    os.close(write_fd)
    wall = float(job.get("wall", 10))
    deadline = time.monotonic() + wall
    data = bytearray()
    timed_out = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data.extend(chunk)
    finally:
        os.close(read_fd)
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"ok": False, "type": "WallTimeExceeded", "error": f"the code ran longer than {wall:g}s"}
    if len(data) >= _HEADER.size:
        size = _HEADER.unpack(bytes(data[: _HEADER.size]))[0]
        if len(data) == _HEADER.size + size:
            try:
                reply = json.loads(bytes(data[_HEADER.size :]))
            except ValueError:
                reply = None
            if isinstance(reply, dict) and isinstance(reply.get("ok"), bool):
                return reply
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return {"ok": False, "type": "CPUTimeExceeded",
                    "error": f"the code used more than {job.get('cpu')}s of CPU time"}
        return {"ok": False, "type": "Crashed", "error": f"the code crashed (signal {sig})"}
    return {"ok": False, "type": "Crashed", "error": "the code exited without a result"}


def main() -> None:
    # Keep the protocol pipes private: user code printing to fd 1 or reading fd 0 must not
    # corrupt or block the frames.
    in_fd = os.dup(0)
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("TIDEGATE_SANDBOX_PRELOAD_JINJA"):
        try:
            _jinja_env()
        except ImportError:
            pass
    _write_frame(out_fd, {"ready": True, "pid": os.getpid()})
    _serve(in_fd, out_fd)


if __name__ == "__main__":
    main()
