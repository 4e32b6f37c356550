"""The agent loop: ask the model, run the tools it picks, feed results back, until it answers.

One run is one async generator of events, so streaming and blocking callers share every line
(the blocking API just keeps the last event). Nothing here can run away: each model turn that
offers tools counts against ``max_steps``, each call against ``max_tool_calls``, usage against
the token budget, and every await sits under the run's deadline. When a cap is reached the model
gets one more turn without tools to write a clean final answer (a fixed sentence when the
deadline or the budget leave no room for it), and the run's ``status`` says which cap it was.
Tool failures and timeouts never end a run: they come back to the model as observations.

The run's deadline wraps individual awaits (a model call, a chunk, a batch of tools), never a
``yield``, so it cancels our own work and not whatever the consumer does between events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import msgspec

from ..config.agents import AgentConfig
from ..context import RequestContext
from .events import (
    AgentEvent,
    AgentFinished,
    AgentLog,
    AgentMessage,
    AgentResult,
    AgentStarted,
    AgentThought,
    RunStatus,
    Usage,
    new_id,
)
from .react import observation_message, react_prompt
from .tools import Tool, ToolContext, ToolOutcome, execute
from .turn import ChatAPI, ModelTurns, Turn

__all__ = ["AgentRun", "AgentSpec", "ChatAPI"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class AgentSpec:
    """One configured agent, compiled at startup: its tools, their specs and its system prompt."""

    def __init__(self, name: str, config: AgentConfig, tools: list[Tool]) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.tools = {tool.name: tool for tool in tools}
        self.react = config.strategy == "react"
        self.openai_tools = [tool.openai_spec for tool in tools]
        self.system = react_prompt(config.instruction, tools) if self.react and tools else config.instruction
        self.params = dict(config.params)

    def __repr__(self) -> str:
        return f"<AgentSpec {self.name!r} model={self.model!r} tools={list(self.tools)!r}>"


def _fallback(status: RunStatus, config: AgentConfig, steps: int, calls: int) -> str:
    if status == "max_steps":
        return f"I stopped after {steps} steps without reaching a final answer."
    if status == "max_tool_calls":
        return f"I stopped after {calls} tool calls without reaching a final answer."
    if status == "token_budget":
        return f"I stopped after using my budget of {config.max_tokens} tokens without reaching a final answer."
    return f"I ran out of time ({float(config.timeout):g}s) before reaching a final answer."


def _keyed(pairs: list[tuple[str, Any]]) -> str:
    """Dify's joined form for parallel tools: a JSON object keyed by tool name (``name#2`` for a
    repeated one)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        key, n = name, 1
        while key in out:
            n += 1
            key = f"{name}#{n}"
        out[key] = value
    return _encode(out).decode()


def _json_or_text(text: str) -> Any:
    try:
        return _decode(text)
    except msgspec.DecodeError:
        return text


class AgentRun:
    """One run of one agent; iterate :meth:`events` exactly once."""

    def __init__(
        self,
        spec: AgentSpec,
        llm: ChatAPI,
        *,
        goal: str,
        history: list[dict[str, Any]],
        tool_ctx: ToolContext,
        stream: bool,
        ctx: RequestContext | None = None,
        conversation_id: str | None = None,
        message_id: str | None = None,
        model: str | None = None,
        instruction: str | None = None,
        report: bool = True,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``model`` and ``instruction`` override the spec's for this run (a workflow node
        renders its instruction per run and maps its model name through the run's services).
        ``pace`` (the Gateway's turn budget) is awaited when tool results arrive: tools of many
        sessions often finish in the same loop turn, and each run then has work to do."""
        self.spec = spec
        self.model = model or spec.model
        if instruction is None:
            self.system = spec.system
        else:
            self.system = react_prompt(instruction, list(spec.tools.values())) if spec.react and spec.tools else instruction
        self.llm = llm
        self.goal = goal
        self.history = history
        self.tool_ctx = tool_ctx
        self.stream = stream
        self.report = report
        self.ctx = ctx
        self.run_id = tool_ctx.run_id or new_id()
        self.conversation_id = conversation_id
        self.message_id = message_id
        self.result: AgentResult | None = None
        self.pace = pace
        self.turns = ModelTurns(spec, llm, model=self.model, ctx=ctx, stream=stream)
        self.turns.run_id = self.run_id

    def _messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.extend(self.history)
        messages.append({"role": "user", "content": self.goal})
        return messages

    def _cap(self, steps: int, calls: int, usage: Usage) -> RunStatus | None:
        config = self.spec.config
        if config.max_tokens is not None and usage.total_tokens >= config.max_tokens:
            return "token_budget"
        if steps >= config.max_steps:
            return "max_steps"
        if calls >= config.max_tool_calls:
            return "max_tool_calls"
        return None

    async def events(self) -> AsyncGenerator[AgentEvent, None]:
        """The run as events; with ``report=False`` only :class:`AgentStarted` and
        :class:`AgentFinished` (the blocking API needs nothing else, and skips building them)."""
        spec, config, report = self.spec, self.spec.config, self.report
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        deadline = loop.time() + float(config.timeout)
        messages = self._messages()
        usage = Usage()
        steps = calls = 0
        shown: list[str] = []
        thoughts: list[AgentThought] = []
        status: RunStatus = "succeeded"
        yield AgentStarted(run_id=self.run_id, agent=spec.name, conversation_id=self.conversation_id,
                           created_at=int(time.time()))  # fmt: skip
        try:
            while True:
                cap = self._cap(steps, calls, usage)
                if cap == "token_budget":
                    status = cap
                    break
                offer = cap is None
                round_id = new_id() if report else ""
                label = f"ROUND {steps + 1}" if offer else "FINAL ANSWER"
                if report:
                    yield AgentLog(id=round_id, label=label, parent_id=None, status="start")
                turn = Turn()
                if self.stream:
                    async for piece in self.turns.streamed(messages, turn, offer=offer, deadline=deadline):
                        shown.append(piece)
                        if report:
                            yield AgentMessage(answer=piece)
                else:
                    piece = await self.turns.call(messages, turn, offer=offer, deadline=deadline)
                    if piece:
                        shown.append(piece)
                        if report:
                            yield AgentMessage(answer=piece)
                usage.add(turn.usage)
                if report:
                    data = {"output": turn.text, "tool_calls": [name for _, name, _ in turn.actions]}
                    yield AgentLog(id=new_id(), label=f"{self.model} Thought", parent_id=round_id, status="success",
                                   data=data, metadata={"usage": turn.usage or {}})  # fmt: skip
                if not offer or not turn.actions:
                    if not offer:
                        status = cap or "max_steps"
                    else:
                        steps += 1
                    if report:
                        yield AgentLog(id=round_id, label=label, parent_id=None, status="success")
                    break
                steps += 1
                if config.max_tokens is not None and usage.total_tokens >= config.max_tokens:
                    status = "token_budget"
                    if report:
                        yield AgentLog(id=round_id, label=label, parent_id=None, status="error",
                                       error="token budget used up before the tools could run")  # fmt: skip
                    break
                thought = AgentThought(
                    id=new_id(), position=steps, thought=turn.thought, observation="",
                    tool=";".join(name for _, name, _ in turn.actions),
                    tool_input=_keyed([(name, _json_or_text(args)) for _, name, args in turn.actions]),
                    created_at=int(time.time()),
                )  # fmt: skip
                log_ids = [new_id() for _ in turn.actions] if report else []
                if report:
                    yield thought
                    for log_id, (_, name, args) in zip(log_ids, turn.actions, strict=True):
                        yield AgentLog(id=log_id, label=f"CALL {name}", parent_id=round_id, status="start",
                                       data={"tool_name": name, "tool_call_args": args})  # fmt: skip
                budget = max(0, config.max_tool_calls - calls)
                outcomes = await self._run_tools(turn.actions, budget, deadline)
                if self.pace is not None:
                    await self.pace()
                calls += min(len(turn.actions), budget)
                thought = msgspec.structs.replace(thought, observation=_keyed([(o.name, o.output) for o in outcomes]))
                thoughts.append(thought)
                self._record(messages, turn, outcomes)
                if report:
                    for log_id, outcome in zip(log_ids, outcomes, strict=True):
                        yield AgentLog(
                            id=log_id, label=f"CALL {outcome.name}", parent_id=round_id,
                            status="success" if outcome.status == "ok" else "error", error=outcome.error,
                            data={"tool_name": outcome.name, "tool_call_args": outcome.arguments,
                                  "output": outcome.output, "status": outcome.status},
                            metadata={"elapsed_time": outcome.elapsed, "attempts": outcome.attempts},
                        )  # fmt: skip
                    yield thought
                    yield AgentLog(id=round_id, label=label, parent_id=None, status="success")
        except TimeoutError:
            status = "timeout"
        answer = "".join(shown)
        if not answer.strip() and status != "succeeded":
            answer = _fallback(status, config, steps, calls)
            if report:
                yield AgentMessage(answer=answer)
        self.result = AgentResult(
            run_id=self.run_id, agent=spec.name, status=status, answer=answer, steps=steps,
            tool_calls=calls, usage=usage, elapsed_time=time.perf_counter() - started,
            conversation_id=self.conversation_id, message_id=self.message_id, thoughts=thoughts,
        )  # fmt: skip
        yield AgentFinished(result=self.result)

    async def _run_tools(
        self, actions: list[tuple[str, str, str]], budget: int, deadline: float
    ) -> list[ToolOutcome]:
        tools = self.spec.tools
        allowed = actions[:budget]
        jobs = [
            execute(tools.get(name), call_id=call_id, name=name, arguments=args, ctx=self.tool_ctx)
            for call_id, name, args in allowed
        ]
        parallel = self.spec.config.parallel_tool_calls
        if self._bounded(allowed, deadline, parallel=parallel):
            outcomes = await self._gather(jobs, parallel)
        else:
            async with asyncio.timeout_at(deadline):
                outcomes = await self._gather(jobs, parallel)
        for call_id, name, args in actions[budget:]:
            message = f"the run's budget of {self.spec.config.max_tool_calls} tool calls is used up"
            outcomes.append(ToolOutcome(call_id=call_id, name=name, arguments=args, status="error",
                                        output=f"Error: {message}", error=message, attempts=0))  # fmt: skip
        return outcomes

    @staticmethod
    async def _gather(jobs: list[Any], parallel: bool) -> list[ToolOutcome]:
        if len(jobs) == 1:
            return [await jobs[0]]
        if parallel:
            return list(await asyncio.gather(*jobs))
        return [await job for job in jobs]

    def _bounded(self, actions: list[tuple[str, str, str]], deadline: float, *, parallel: bool) -> bool:
        """Whether the tools' own policies already end the batch before the run's deadline (then
        the deadline needs no timer of its own): no tool waits for a slot and the worst case of
        timeouts, retries and backoffs fits in the time left."""
        worst = 0.0
        for _, name, _ in actions:
            tool = self.spec.tools.get(name)
            if tool is None:
                continue
            if tool.waiting():
                return False
            retry = tool.retry
            backoff = float(retry.backoff) * (2 ** max(0, retry.attempts - 1) - 1)
            cost = tool.timeout * retry.attempts + backoff
            worst = max(worst, cost) if parallel else worst + cost
        return asyncio.get_running_loop().time() + worst < deadline

    def _record(self, messages: list[dict[str, Any]], turn: Turn, outcomes: list[ToolOutcome]) -> None:
        if self.spec.react:
            messages.append({"role": "assistant", "content": turn.text})
            messages.append(observation_message(outcomes[0].output))
            return
        messages.append({
            "role": "assistant",
            "content": turn.text or None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                for call_id, name, args in turn.actions
            ],
        })  # fmt: skip
        for outcome in outcomes:
            messages.append({"role": "tool", "tool_call_id": outcome.call_id, "content": outcome.output})

    # -- one model turn ------------------------------------------------------------------------
