"""The agent runtime the Gateway owns: tools, compiled agents, conversation memory, host API.

Everything is built from the config at construction (Python tools are imported, schemas
generated, prompts rendered) so a broken reference fails at startup with its path, and a run only
looks things up. ``run`` / ``stream`` are what ``gateway.run_agent`` / ``gateway.stream_agent``
delegate to; the OpenAI surface asks :meth:`AgentRuntime.agent_for_model` whether a model name is
served by a server-side agent and then calls :meth:`complete_openai` / :meth:`stream_openai`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal

from ..config.agents import (
    AgentConfig,
    AgentsConfig,
    RetryConfig,
    ToolConfig,
    agents_config_of,
    validate_agents,
)
from ..context import RequestContext
from ..engine.http import HttpNodeClient
from ..errors import ConfigError, NotFoundError, RequestError, UsageError
from ..sessions import Sessions
from .events import AgentEvent, AgentFinished, AgentMessage, AgentResult, new_id
from .http_tool import HttpTool
from .loop import AgentRun, AgentSpec
from .python_tool import PythonTool, import_callable
from .tools import Tool, ToolContext, ToolRegistry
from .workflow_tool import WorkflowTool, current_depth

__all__ = ["AgentRuntime"]

State = Literal["unopened", "open", "closed"]


class AgentRuntime:
    """Tools, agents and sessions of one Gateway; ``start()`` with it, ``close()`` with it."""

    def __init__(
        self,
        gateway: Any,
        config: AgentsConfig | None = None,
        *,
        sessions: Sessions | None = None,
        http: HttpNodeClient | None = None,
    ) -> None:
        self.gateway = gateway
        self.config = config if config is not None else agents_config_of(gateway.config)
        issues = validate_agents(self.config, getattr(gateway, "config", None))
        self._owns_http = http is None
        self.http = http or HttpNodeClient()
        """HTTP tools' client (and SSRF guard); pass the Gateway's http-node client to share it."""
        self.tools = ToolRegistry()
        for name, tool_config in self.config.tools.items():
            try:
                self.tools.add(self._build_tool(name, tool_config))
            except ValueError as exc:
                issues.append(f"{exc} - at `$.tools.{name}.python`")
        if issues:
            raise ConfigError(issues, source=getattr(getattr(gateway, "config", None), "source", None))
        self.agents: dict[str, AgentSpec] = {}
        self._served: dict[str, AgentSpec] = {}
        for name, agent_config in self.config.agents.items():
            self.add_agent(name, agent_config)
        self.sessions = sessions or Sessions(self.config.sessions)
        self.state: State = "unopened"

    def _build_tool(self, name: str, cfg: ToolConfig) -> Tool:
        common: dict[str, Any] = {
            "description": cfg.description, "parameters": cfg.parameters, "timeout": float(cfg.timeout),
            "retry": cfg.retry, "max_concurrency": cfg.max_concurrency,
        }  # fmt: skip
        if cfg.python is not None:
            return PythonTool(name, import_callable(cfg.python), pool=self.gateway.pool, **common)
        if cfg.http is not None:
            return HttpTool(name, cfg.http, client=self.http, **common)
        assert cfg.workflow is not None  # validate_agents guarantees exactly one kind
        return WorkflowTool(name, cfg.workflow, gateway=self.gateway, max_depth=cfg.max_depth, **common)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.state != "unopened":
            raise UsageError(f"AgentRuntime cannot start: it is {self.state}")
        if self._owns_http and any(isinstance(tool, HttpTool) for tool in self.tools):
            await self.http.start()
        for tool in self.tools:
            await tool.start()
        self.state = "open"

    async def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        for tool in self.tools:
            await tool.close()
        if self._owns_http and self.http.state == "open":
            await self.http.close()
        await self.sessions.close()

    # -- registration (host code) --------------------------------------------------------------

    def add_tool(
        self,
        tool: Tool | Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float = 30.0,
        retry: RetryConfig | None = None,
        max_concurrency: int = 64,
    ) -> Tool:
        """Register a :class:`Tool` or a Python function (described from its signature)."""
        if not isinstance(tool, Tool):
            tool = PythonTool(name or tool.__name__, tool, pool=self.gateway.pool, description=description,
                              timeout=timeout, retry=retry, max_concurrency=max_concurrency)  # fmt: skip
        return self.tools.add(tool)

    def add_agent(self, name: str, config: AgentConfig) -> AgentSpec:
        missing = [tool for tool in config.tools if tool not in self.tools]
        if missing:
            raise ConfigError(f"Expected tools that exist, got {', '.join(f'`{t}`' for t in missing)} - at `$.agents.{name}.tools`")
        tools = [tool for tool in self.tools if tool.name in config.tools]
        tools.sort(key=lambda tool: config.tools.index(tool.name))
        spec = AgentSpec(name, config, tools)
        self.agents[name] = spec
        for alias in config.serve_as:
            self._served[alias] = spec
        return spec

    # -- lookups -------------------------------------------------------------------------------

    def agent(self, name: str) -> AgentSpec:
        spec = self.agents.get(name)
        if spec is None:
            known = ", ".join(sorted(self.agents)) or "none configured"
            raise NotFoundError(f"The agent `{name}` does not exist (configured: {known})", code="agent_not_found")
        return spec

    def agent_for_model(self, model: str) -> AgentSpec | None:
        """The server-side agent serving ``model`` on the OpenAI surface, if any."""
        return self._served.get(model)

    # -- host API ------------------------------------------------------------------------------

    async def run(self, name: str, goal: str, **options: Any) -> AgentResult:
        """Run to the end; the answer, status (which cap, if any), usage and steps come back.

        Options are those of :meth:`stream`. Model failures (after routing's retries) raise.
        """
        result: AgentResult | None = None
        async for event in self._events(name, goal, stream=False, **options):
            if isinstance(event, AgentFinished):
                result = event.result
        assert result is not None
        return result

    def stream(
        self,
        name: str,
        goal: str,
        *,
        session: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        ctx: RequestContext | None = None,
        history: list[dict[str, Any]] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        """Events of one run as they happen, ending with :class:`AgentFinished`.

        ``session`` continues a stored conversation (its window becomes the history and the turn
        is stored after it); without it a new conversation starts (its id is in the result).
        Identity comes from ``tenant`` / ``user`` or else the request context. An explicit
        ``history`` (e.g. an OpenAI request's messages) bypasses the store.
        """
        return self._events(name, goal, stream=True, session=session, user=user, tenant=tenant, ctx=ctx,
                            history=history, inputs=inputs)  # fmt: skip

    async def _events(
        self,
        name: str,
        goal: str,
        *,
        stream: bool,
        session: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        ctx: RequestContext | None = None,
        history: list[dict[str, Any]] | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> AsyncGenerator[AgentEvent, None]:
        if self.state == "closed":
            raise UsageError("the agent runtime is closed")
        turns = getattr(self.gateway, "turns", None)
        if turns is not None:
            await turns.pace()  # sessions often start together: spread their first steps
        spec = self.agent(name)
        if not isinstance(goal, str) or not goal.strip():
            raise RequestError("Expected a non-empty goal for the agent", param="query")
        tenant = tenant if tenant is not None else (ctx.tenant if ctx else None)
        user = user if user is not None else (ctx.user if ctx else None)
        conversation = None
        if history is None and spec.config.memory:
            conversation = await self.sessions.open(tenant, user, session, inputs=inputs)
            history = self.sessions.window(conversation)
        run_id = new_id()
        tool_ctx = ToolContext(tenant=tenant, user=user, run_id=run_id, agent=name, depth=current_depth(),
                               conversation_id=conversation.id if conversation else None)  # fmt: skip
        run = AgentRun(spec, self.gateway, goal=goal, history=list(history or ()), tool_ctx=tool_ctx,
                       stream=stream, report=stream, ctx=ctx, conversation_id=tool_ctx.conversation_id,
                       message_id=new_id(), pace=turns.pace if turns is not None else None)  # fmt: skip
        events = run.events()
        try:
            async for event in events:
                if isinstance(event, AgentFinished) and conversation is not None:
                    result = event.result
                    await self.sessions.append(
                        conversation, query=goal, answer=result.answer, status=result.status, inputs=inputs,
                        turn_id=result.message_id,
                        metadata={"usage": {"prompt_tokens": result.usage.prompt_tokens,
                                            "completion_tokens": result.usage.completion_tokens,
                                            "total_tokens": result.usage.total_tokens},
                                  "steps": result.steps, "tool_calls": result.tool_calls, "agent": name},
                    )  # fmt: skip
                yield event
        finally:
            await events.aclose()

    # -- OpenAI surface ------------------------------------------------------------------------

    def _openai_split(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        messages = body.get("messages") or []
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                return str(content or ""), [m for m in messages[:index] if isinstance(m, dict)]
        raise RequestError("Expected a `user` message for the agent to answer", param="messages")

    async def complete_openai(self, spec: AgentSpec, body: dict[str, Any], *, ctx: RequestContext | None = None) -> dict[str, Any]:
        """A server-side agent run answering an OpenAI chat request, as a ``chat.completion``."""
        goal, history = self._openai_split(body)
        result = await self.run(spec.name, goal, history=history, ctx=ctx, user=_str(body.get("user")))
        return {
            "id": f"chatcmpl-{result.run_id}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", spec.name),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer},
                         "finish_reason": "stop" if result.status == "succeeded" else "length"}],
            "usage": _usage(result), "agent": _agent_info(result),
        }  # fmt: skip

    async def stream_openai(self, spec: AgentSpec, body: dict[str, Any], *, ctx: RequestContext | None = None) -> AsyncIterator[dict[str, Any]]:
        """The same run as ``chat.completion.chunk`` dicts (answer text only; tools stay inside)."""
        goal, history = self._openai_split(body)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {"id": f"chatcmpl-{new_id()}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", spec.name)}  # fmt: skip
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        events = self.stream(spec.name, goal, history=history, ctx=ctx, user=_str(body.get("user")))
        try:
            async for event in events:
                if isinstance(event, AgentMessage):
                    yield {**base, "choices": [{"index": 0, "delta": {"content": event.answer}, "finish_reason": None}]}
                elif isinstance(event, AgentFinished):
                    result = event.result
                    finish = "stop" if result.status == "succeeded" else "length"
                    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                           "agent": _agent_info(result)}  # fmt: skip
                    if include_usage:
                        yield {**base, "choices": [], "usage": _usage(result)}
        finally:
            await events.aclose()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _usage(result: AgentResult) -> dict[str, int]:
    usage = result.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}  # fmt: skip


def _agent_info(result: AgentResult) -> dict[str, Any]:
    return {"name": result.agent, "status": result.status, "steps": result.steps, "tool_calls": result.tool_calls}
