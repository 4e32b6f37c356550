"""The ``tools:``, ``agents:`` and ``sessions:`` sections: what agents may call and remember.

A tool is one callable the model may ask for (a Python function, an HTTP endpoint or another
workflow), each with its own deadline, retry policy and concurrency cap so one slow or broken tool
cannot hold a run or the gateway. An agent names a model, the tools it may use and the caps that
keep a runaway loop from eating the server (steps, tool calls, deadline, token budget).
``sessions:`` bounds conversation memory: how much history a turn sees, how long an idle
conversation lives and how many the process keeps.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import msgspec

from .types import ByteSize, ConfigStruct, Duration

if TYPE_CHECKING:
    from .schema import TidegateConfig

__all__ = [
    "AgentConfig",
    "AgentsConfig",
    "HttpAuthConfig",
    "HttpToolConfig",
    "RetryConfig",
    "SessionsConfig",
    "ToolConfig",
    "agents_config_of",
    "validate_agents",
]

_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
"""OpenAI's function-name rule (letters, digits, ``_``, ``-``, at most 64), led by a non-digit."""
_PYTHON_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class RetryConfig(ConfigStruct):
    """Extra attempts after a failed tool call; the run's own deadline still bounds them all."""

    attempts: int = 1
    """Total attempts, the first included (1 = no retry)."""
    backoff: Duration = Duration(0.2)
    """Wait before the second attempt; doubled before each later one."""
    on: list[Literal["error", "timeout"]] = msgspec.field(default_factory=lambda: ["error", "timeout"])


class HttpAuthConfig(ConfigStruct):
    type: Literal["none", "bearer", "basic", "api-key"] = "none"
    token: str | None = None
    """Bearer token or API key value."""
    username: str | None = None
    password: str | None = None
    header: str = "Authorization"
    """Header that carries an ``api-key`` (e.g. ``X-API-Key``)."""


class HttpToolConfig(ConfigStruct):
    """An HTTP endpoint as a tool. ``{name}`` placeholders in ``url`` and in the strings of
    ``body`` are filled from the call's arguments (a placeholder that is a whole string keeps the
    argument's JSON type); with no ``body`` the arguments are sent as the JSON body (or as query
    parameters for GET)."""

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    body: Any = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    auth: HttpAuthConfig = msgspec.field(default_factory=HttpAuthConfig)
    allow_private: bool = False
    """Allow loopback, private, link-local and other non-public targets (the SSRF guard)."""
    max_response_size: ByteSize = ByteSize(1024 * 1024)


class ToolConfig(ConfigStruct):
    """One tool: exactly one of ``python``, ``http`` or ``workflow``."""

    python: str | None = None
    """``module:function``; sync functions run on the worker pool, async ones are awaited."""
    http: HttpToolConfig | None = None
    workflow: str | None = None
    """A configured workflow run with the call's arguments as its inputs."""
    description: str | None = None
    """What the model reads; defaults to the function's docstring (python tools)."""
    parameters: dict[str, Any] | None = None
    """JSON schema of the arguments; python tools derive it from type hints when omitted."""
    timeout: Duration = Duration(30.0)
    """Deadline of one attempt."""
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    max_concurrency: int = 64
    """Calls of this tool running at once across all runs; more wait their turn."""
    max_depth: int = 3
    """For workflow tools: how deeply workflows may call each other through tools."""


class AgentConfig(ConfigStruct):
    """A server-side agent: a model, its tools and the caps of one run."""

    model: str
    tools: list[str] = msgspec.field(default_factory=list)
    instruction: str = ""
    """The system prompt."""
    strategy: Literal["function_calling", "react"] = "function_calling"
    """``react`` prompts models without native tool calling to write Action lines instead."""
    max_steps: int = 8
    """Model turns that may ask for tools; past it the model is asked for a final answer."""
    max_tool_calls: int = 32
    timeout: Duration = Duration(120.0)
    """Deadline of one whole run, tools and model calls included."""
    max_tokens: int | None = None
    """Token budget of one run (prompt + completion over all its model calls)."""
    parallel_tool_calls: bool = True
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    """Extra chat parameters sent with every model call (temperature, max_tokens…)."""
    serve_as: list[str] = msgspec.field(default_factory=list)
    """Model names on the OpenAI surface that this agent answers server-side (their ``tools``
    are then ours, not the client's)."""
    memory: bool = True
    """Keep the conversation in the session store between runs."""


class SessionsConfig(ConfigStruct):
    ttl: Duration = Duration(3600.0)
    """An idle conversation is forgotten this long after its last turn."""
    max_sessions: int = 10_000
    """Conversations kept in the process; the least recently used go first."""
    window_turns: int | None = 20
    """Earlier turns a new turn sees (``null``: no turn limit)."""
    window_tokens: int | None = None
    """Estimated tokens of earlier turns a new turn sees (``null``: no token limit)."""
    max_turns: int = 500
    """Turns stored per conversation (the oldest are dropped; listing shows what is kept)."""


class AgentsConfig(ConfigStruct):
    """The three sections together, as the agent runtime takes them."""

    tools: dict[str, ToolConfig] = msgspec.field(default_factory=dict)
    agents: dict[str, AgentConfig] = msgspec.field(default_factory=dict)
    sessions: SessionsConfig = msgspec.field(default_factory=SessionsConfig)


def agents_config_of(root: object) -> AgentsConfig:
    """The sections from a root config (empty ones when the root does not carry them yet)."""
    return AgentsConfig(
        tools=getattr(root, "tools", None) or {},
        agents=getattr(root, "agents", None) or {},
        sessions=getattr(root, "sessions", None) or SessionsConfig(),
    )


def validate_agents(cfg: AgentsConfig, root: TidegateConfig | None = None) -> list[str]:
    """Semantic checks: one kind per tool, well-formed refs, known models, tools and workflows."""
    issues: list[str] = []
    for name, tool in cfg.tools.items():
        issues.extend(_check_tool(name, tool, root))
    served: dict[str, str] = {}
    models = getattr(root, "models", None)
    for name, agent in cfg.agents.items():
        at = f"$.agents.{name}"
        if models is not None and agent.model not in models:
            known = ", ".join(f"`{m}`" for m in sorted(models)) or "none"
            issues.append(f"Expected a configured model ({known}), got `{agent.model}` - at `{at}.model`")
        for index, tool_name in enumerate(agent.tools):
            if tool_name not in cfg.tools:
                known = ", ".join(f"`{t}`" for t in sorted(cfg.tools)) or "none"
                issues.append(f"Expected a tool from `tools:` ({known}), got `{tool_name}` - at `{at}.tools[{index}]`")
        for field in ("max_steps", "max_tool_calls"):
            if getattr(agent, field) < 1:
                issues.append(f"Expected `int` >= 1, got `{getattr(agent, field)}` - at `{at}.{field}`")
        if agent.max_tokens is not None and agent.max_tokens < 1:
            issues.append(f"Expected `int` >= 1, got `{agent.max_tokens}` - at `{at}.max_tokens`")
        if agent.timeout <= 0:
            issues.append(f"Expected a duration > 0, got `{float(agent.timeout):g}s` - at `{at}.timeout`")
        for index, alias in enumerate(agent.serve_as):
            if alias in served:
                issues.append(
                    f"Expected each served model name to belong to one agent, got `{alias}` for "
                    f"`{served[alias]}` and `{name}` - at `{at}.serve_as[{index}]`"
                )
            served[alias] = name
    sessions = cfg.sessions
    for field in ("window_turns", "window_tokens"):
        value = getattr(sessions, field)
        if value is not None and value < 0:
            issues.append(f"Expected `int` >= 0 or null, got `{value}` - at `$.sessions.{field}`")
    for field in ("max_sessions", "max_turns"):
        if getattr(sessions, field) < 1:
            issues.append(f"Expected `int` >= 1, got `{getattr(sessions, field)}` - at `$.sessions.{field}`")
    if sessions.ttl <= 0:
        issues.append(f"Expected a duration > 0, got `{float(sessions.ttl):g}s` - at `$.sessions.ttl`")
    return issues


def _check_tool(name: str, tool: ToolConfig, root: TidegateConfig | None) -> list[str]:
    at = f"$.tools.{name}"
    issues: list[str] = []
    if not _TOOL_NAME.match(name):
        issues.append(
            f"Expected a tool name of at most 64 letters, digits, `_` or `-` (not starting with a digit),"
            f" got `{name}` - at `{at}`"
        )
    kinds = [kind for kind in ("python", "http", "workflow") if getattr(tool, kind) is not None]
    if len(kinds) != 1:
        got = ", ".join(f"`{k}`" for k in kinds) or "none"
        issues.append(f"Expected exactly one of `python`, `http` or `workflow`, got {got} - at `{at}`")
    if tool.python is not None and not _PYTHON_REF.match(tool.python):
        issues.append(f"Expected `module:function` (e.g. `myapp.tools:lookup`), got `{tool.python}` - at `{at}.python`")
    if tool.http is not None:
        parts = urlsplit(tool.http.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            issues.append(f"Expected an http(s) URL, got `{tool.http.url}` - at `{at}.http.url`")
        auth = tool.http.auth
        if auth.type in ("bearer", "api-key") and not auth.token:
            issues.append(f"Expected a `token` for `{auth.type}` auth, got nothing - at `{at}.http.auth.token`")
        if auth.type == "basic" and (auth.username is None or auth.password is None):
            issues.append(f"Expected `username` and `password` for basic auth - at `{at}.http.auth`")
    if tool.workflow is not None:
        workflows = getattr(root, "workflows", None)
        if workflows is not None and tool.workflow not in workflows:
            known = ", ".join(f"`{w}`" for w in sorted(workflows)) or "none"
            issues.append(f"Expected a configured workflow ({known}), got `{tool.workflow}` - at `{at}.workflow`")
    if tool.parameters is not None and tool.parameters.get("type", "object") != "object":
        issues.append(
            f"Expected a JSON schema of `type: object`, got `{tool.parameters.get('type')}` - at `{at}.parameters.type`"
        )
    if tool.timeout <= 0:
        issues.append(f"Expected a duration > 0, got `{float(tool.timeout):g}s` - at `{at}.timeout`")
    if tool.retry.attempts < 1:
        issues.append(f"Expected `int` >= 1, got `{tool.retry.attempts}` - at `{at}.retry.attempts`")
    for field in ("max_concurrency", "max_depth"):
        if getattr(tool, field) < 1:
            issues.append(f"Expected `int` >= 1, got `{getattr(tool, field)}` - at `{at}.{field}`")
    return issues
