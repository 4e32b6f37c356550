"""The workflow ``agent`` node: Dify's agent node data, run by our agent loop.

Dify's agent node names a strategy (``function_calling`` or ``ReAct``) and passes its settings as
``agent_parameters`` entries of ``{type: constant | mixed | variable, value}``: ``model`` (a model
selector), ``tools`` (tool entries whose ``tool_name`` we look up in our ``tools:`` section),
``instruction``, ``query`` and ``maximum_iterations``. Everything is checked when the workflow
loads (an unknown tool or strategy is a load error with its path); instruction and query are
``{{#…#}}`` templates rendered per run.

The node class is bound to one :class:`~tidegate.agent.runtime.AgentRuntime` when registered
(:func:`register_agent_node`), so tools resolve at load without import-time globals. The answer
streams into output ``text`` (an answer node relays it live); each step is also published as a
Dify ``agent_log`` event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from ..config.agents import AgentConfig
from ..dsl.spec import NodeSpec
from ..engine.events import Event
from ..engine.nodes.base import Compiler, Node, NodeContext, NodeFailure, NodeResult
from ..engine.nodes.llm import MemoryConfig, history_messages
from ..engine.nodes.registry import NodeRegistry
from ..engine.template import Template, to_text
from ..errors import TidegateError
from .events import AgentFinished, AgentLog, AgentMessage, AgentResult
from .loop import AgentRun, AgentSpec
from .tools import ToolContext

if TYPE_CHECKING:
    from .runtime import AgentRuntime

__all__ = ["AgentLogEvent", "AgentNode", "register_agent_node"]

_STRATEGIES = {"function_calling": "function_calling", "functioncalling": "function_calling",
               "react": "react", "cot": "react", "chain_of_thought": "react"}  # fmt: skip
_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed",
                     "max_completion_tokens"})  # fmt: skip
DEFAULT_ITERATIONS = 3
"""Dify's agent strategies default to three iterations."""


class AgentLogEvent(Event, frozen=True, kw_only=True, gc=False):
    """Dify's workflow ``agent_log`` event: one entry of an agent node's step tree."""

    kind: ClassVar[str] = "agent_log"
    node_execution_id: str
    node_id: str
    id: str
    label: str
    parent_id: str | None
    status: str
    data: dict[str, Any]
    error: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class _Param(msgspec.Struct):
    type: Literal["constant", "mixed", "variable"] = "constant"
    value: Any = None


class _ModelValue(msgspec.Struct):
    model: str
    provider: str = ""
    mode: str = "chat"
    completion_params: dict[str, Any] = msgspec.field(default_factory=dict)


class _ToolValue(msgspec.Struct):
    tool_name: str
    enabled: bool = True
    provider_name: str = ""


class _Data(msgspec.Struct):
    agent_strategy_name: str = "function_calling"
    agent_parameters: dict[str, _Param] = msgspec.field(default_factory=dict)
    memory: MemoryConfig | None = None


class _Text:
    """A string parameter: a template (constant / mixed) or a variable selector."""

    __slots__ = ("selector", "template")

    def __init__(self, param: _Param | None) -> None:
        self.template: Template | None = None
        self.selector: tuple[str, ...] | None = None
        if param is None:
            self.template = Template("")
        elif param.type == "variable" and isinstance(param.value, list):
            self.selector = tuple(str(part) for part in param.value)
        else:
            self.template = Template(to_text(param.value))

    def render(self, ctx: NodeContext) -> str:
        if self.selector is not None:
            return to_text(ctx.pool.value(self.selector))
        assert self.template is not None
        return self.template.render(ctx.pool)


class AgentNode(Node):
    type = "agent"
    streams = frozenset({"text"})
    runtime: ClassVar[AgentRuntime | None] = None

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        params = data.agent_parameters
        self.memory = data.memory
        strategy = _STRATEGIES.get(data.agent_strategy_name.lower().replace("-", "_"))
        if strategy is None:
            compiler.problem(spec, f"Expected an agent strategy (function_calling, ReAct), got `{data.agent_strategy_name}`",
                             "agent_strategy_name")  # fmt: skip
            strategy = "function_calling"
        model = self._model(spec, compiler, params.get("model"))
        tools = self._tools(spec, compiler, params.get("tools"))
        iterations = self._iterations(spec, compiler, params.get("maximum_iterations"))
        self.instruction = _Text(params.get("instruction"))
        self.query = _Text(params.get("query") or _Param(type="mixed", value="{{#sys.query#}}"))
        config = AgentConfig(model=model.model if model else "", tools=tools, strategy=strategy,  # type: ignore[arg-type]
                             max_steps=iterations, memory=False,
                             params={k: v for k, v in (model.completion_params if model else {}).items()
                                     if k in _PARAMS and v is not None})  # fmt: skip
        runtime = self.runtime
        registry_tools = [runtime.tools.get(name) for name in tools] if runtime is not None else []
        self.agent = AgentSpec(f"{spec.id}", config, [t for t in registry_tools if t is not None])

    def _model(self, spec: NodeSpec, compiler: Compiler, param: _Param | None) -> _ModelValue | None:
        if param is None or param.value is None:
            compiler.problem(spec, "Expected a `model` agent parameter, got none", "agent_parameters.model")
            return None
        return compiler.convert(spec, _ModelValue, param.value)

    def _tools(self, spec: NodeSpec, compiler: Compiler, param: _Param | None) -> list[str]:
        if param is None or param.value is None:
            return []
        entries = compiler.convert(spec, list[_ToolValue], param.value) or []
        runtime = self.runtime
        names: list[str] = []
        for index, entry in enumerate(entries):
            if not entry.enabled:
                continue
            if runtime is None or entry.tool_name not in runtime.tools:
                known = ", ".join(f"`{n}`" for n in (runtime.tools.names() if runtime else [])) or "none"
                compiler.problem(spec, f"Expected a tool from the `tools:` config ({known}), got `{entry.tool_name}`",
                                 f"agent_parameters.tools.value[{index}].tool_name")  # fmt: skip
                continue
            names.append(entry.tool_name)
        return names

    def _iterations(self, spec: NodeSpec, compiler: Compiler, param: _Param | None) -> int:
        if param is None or param.value in (None, ""):
            return DEFAULT_ITERATIONS
        try:
            value = int(param.value)
        except (TypeError, ValueError):
            value = 0
        if not 1 <= value <= 99:
            compiler.problem(spec, f"Expected `maximum_iterations` between 1 and 99, got `{param.value}`",
                             "agent_parameters.maximum_iterations.value")  # fmt: skip
            return DEFAULT_ITERATIONS
        return value

    async def run(self, ctx: NodeContext) -> NodeResult:
        runtime = self.runtime
        llm = ctx.services.llm or (runtime.gateway if runtime is not None else None)
        if llm is None:
            raise NodeFailure("agent nodes need the Gateway's chat API, which is not configured", error_type="ConfigError")
        query = self.query.render(ctx)
        if not query.strip():
            raise NodeFailure("the agent's query is empty", error_type="ValueError")
        instruction = self.instruction.render(ctx)
        history = [{"role": m["role"], "content": m["content"]} for m in history_messages(ctx.run.history, self.memory)]
        user = ctx.pool.value(("sys", "user_id"))
        tool_ctx = ToolContext(user=to_text(user) or None, run_id=ctx.run.run_id, agent=self.id,
                               conversation_id=to_text(ctx.pool.value(("sys", "conversation_id"))) or None)  # fmt: skip
        stream = ctx.run.wants_stream(ctx, "text")
        run = AgentRun(self.agent, llm, goal=query, history=history, tool_ctx=tool_ctx, stream=stream,
                       model=ctx.services.model_name(self.agent.model), instruction=instruction)  # fmt: skip
        result: AgentResult | None = None
        try:
            async for event in run.events():
                if isinstance(event, AgentMessage):
                    ctx.stream("text", event.answer)
                elif isinstance(event, AgentLog):
                    ctx.run.emit(AgentLogEvent(
                        node_execution_id=ctx.execution_id, node_id=self.id, id=event.id, label=event.label,
                        parent_id=event.parent_id, status=event.status, data=event.data, error=event.error,
                        metadata=event.metadata,
                    ))  # fmt: skip
                elif isinstance(event, AgentFinished):
                    result = event.result
        except TidegateError as exc:
            raise NodeFailure(exc.message, error_type=type(exc).__name__) from None
        assert result is not None
        usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens,
                 "total_tokens": result.usage.total_tokens}  # fmt: skip
        outputs = {"text": result.answer, "files": [], "json": [], "usage": usage}
        process = {"strategy": self.agent.config.strategy, "model": run.model, "status": result.status,
                   "steps": result.steps, "tool_calls": result.tool_calls,
                   "thoughts": [msgspec.to_builtins(t) for t in result.thoughts]}  # fmt: skip
        return NodeResult(outputs, inputs={"query": query}, process_data=process, tokens=usage["total_tokens"],
                          metadata={"total_tokens": usage["total_tokens"], "agent_status": result.status})  # fmt: skip


def register_agent_node(registry: NodeRegistry, runtime: AgentRuntime) -> type[AgentNode]:
    """Register an ``agent`` node type bound to ``runtime`` (its tools and its Gateway)."""
    bound = type("AgentNode", (AgentNode,), {"runtime": runtime, "__module__": __name__})
    registry.register(bound)
    return bound
