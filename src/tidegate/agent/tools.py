"""Tools: what an agent may call, and the policy every call runs under.

Each tool carries its own deadline, retry policy and concurrency cap, enforced here once for every
kind (Python, HTTP, workflow), so a slow tool only slows the runs that use it and a broken one
costs each run at most ``attempts × timeout``. Whatever happens, :func:`execute` returns an
outcome (a result, an error or a timeout) instead of raising: the agent loop feeds it back to the
model as an observation, which is how a model recovers from a bad argument or a flaky backend.
Only cancellation (the run's deadline, a client gone) passes through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

import msgspec

from ..config.agents import RetryConfig

__all__ = [
    "Tool",
    "ToolContext",
    "ToolFailure",
    "ToolOutcome",
    "ToolRegistry",
    "execute",
    "render_output",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(enc_hook=str).encode
_MAX_OBSERVATION = 16_000
"""Characters of one tool result shown to the model; more is cut (and says so)."""


class ToolFailure(Exception):
    """A tool failed in a way the model should read (bad arguments, a 4xx/5xx, a refusal)."""


class ToolContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who a call is made for. Python tools that annotate a parameter with this type get it
    injected (it is not shown to the model), so identity never comes from model arguments."""

    tenant: str | None = None
    user: str | None = None
    conversation_id: str | None = None
    run_id: str = ""
    agent: str = ""
    depth: int = 0
    """How many workflow tools deep this call is (0 for a top-level agent run)."""


class ToolOutcome(msgspec.Struct, kw_only=True, gc=False):
    """What one tool call came to; ``output`` is the text the model reads."""

    call_id: str
    name: str
    arguments: str
    status: Literal["ok", "error", "timeout"]
    output: str
    error: str | None = None
    elapsed: float = 0.0
    attempts: int = 1


class Tool:
    """Base of every tool kind: name, description, argument schema and the call policy.

    Subclasses implement :meth:`call`; the policy (timeout, retry, concurrency cap) is applied by
    :func:`execute`, never by the subclass.
    """

    kind: ClassVar[str] = "tool"

    def __init__(
        self,
        name: str,
        *,
        description: str,
        parameters: Mapping[str, Any],
        timeout: float = 30.0,
        retry: RetryConfig | None = None,
        max_concurrency: int = 64,
    ) -> None:
        self.name = name
        self.description = description
        self.parameters = dict(parameters)
        self.timeout = float(timeout)
        self.retry = retry or RetryConfig()
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self.openai_spec: dict[str, Any] = {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": self.parameters},
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def mcp_spec(self) -> dict[str, Any]:
        """The tool as an MCP ``tools/list`` entry."""
        return {"name": self.name, "description": self.description, "inputSchema": self.parameters}

    def waiting(self) -> bool:
        """Whether a new call would have to wait for a free slot (the concurrency cap)."""
        return self._slots.locked()

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError

    async def start(self) -> None:
        """Open what the tool needs (HTTP sessions…); called once by the runtime."""

    async def close(self) -> None:
        """Release it again."""


def render_output(value: Any) -> str:
    """The text a model reads for a tool's return value: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = _encode(value).decode()
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > _MAX_OBSERVATION:
        text = text[:_MAX_OBSERVATION] + f"… [cut: {len(text) - _MAX_OBSERVATION} more characters]"
    return text


def parse_arguments(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        value = _decode(raw)
    except msgspec.DecodeError as exc:
        raise ToolFailure(f"the arguments are not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ToolFailure(f"Expected the arguments to be a JSON object, got `{type(value).__name__}`")
    return value


async def execute(
    tool: Tool | None,
    *,
    call_id: str,
    name: str,
    arguments: str,
    ctx: ToolContext,
) -> ToolOutcome:
    """Run one call under the tool's policy; every failure becomes an outcome, never an exception."""
    started = time.perf_counter()

    def outcome(status: Literal["ok", "error", "timeout"], output: str, error: str | None, attempts: int) -> ToolOutcome:
        return ToolOutcome(call_id=call_id, name=name, arguments=arguments, status=status, output=output,
                           error=error, elapsed=time.perf_counter() - started, attempts=attempts)  # fmt: skip

    if tool is None:
        message = f"there is no tool named `{name}`"
        return outcome("error", f"Error: {message}", message, 0)
    try:
        parsed = parse_arguments(arguments)
    except ToolFailure as exc:
        return outcome("error", f"Error: {exc}", str(exc), 0)
    policy = tool.retry
    delay = float(policy.backoff)
    attempt = 0
    while True:
        attempt += 1
        async with tool._slots:
            scope = asyncio.timeout(tool.timeout)
            try:
                async with scope:
                    value = await tool.call(parsed, ctx)
                return outcome("ok", render_output(value), None, attempt)
            except TimeoutError as exc:
                kind: Literal["error", "timeout"] = "timeout" if scope.expired() else "error"
                message = (
                    f"tool `{name}` timed out after {tool.timeout:g}s"
                    if scope.expired()
                    else f"tool `{name}` raised TimeoutError: {exc}"
                )
            except ToolFailure as exc:
                kind, message = "error", f"tool `{name}` failed: {exc}"
            except Exception as exc:  # a tool's own bug is the model's observation
                kind, message = "error", f"tool `{name}` raised {type(exc).__name__}: {exc}"
        if attempt >= policy.attempts or kind not in policy.on:
            return outcome(kind, f"Error: {message}", message, attempt)
        await asyncio.sleep(delay)
        delay *= 2


class ToolRegistry:
    """The tools a runtime knows by name; built from config and extendable from host code."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> Tool:
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)
