"""One model turn of an agent run: shape the request, call the model, read what it asked for.

The loop (``loop.py``) decides *whether* to offer tools; this module turns that into a request
(native ``tools`` with ``tool_choice`` for function calling, a ReAct prompt with a stop sequence
otherwise), makes the call blocking or streamed under the run's deadline, and parses the answer
into visible text and tool requests.

A streamed turn is bounded by one timer (:class:`Watchdog`) rather than an ``asyncio.timeout`` per
chunk: a timer costs a heap entry and a handle, and a turn has dozens of chunks. The watchdog
cancels the task only while it waits for the next chunk, never while the consumer of our events
does its own work between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from ..context import RequestContext
from .events import new_id
from .react import FinalAnswerFilter, ReactStep, parse_react

if TYPE_CHECKING:
    from .loop import AgentSpec

__all__ = ["ChatAPI", "ModelTurns", "Turn", "Watchdog"]

_WRAP_UP = "You have no steps left. Reply now with `Final Answer:` and your best answer."


class ChatAPI(Protocol):
    """The Gateway's public chat API: all an agent needs from it."""

    async def chat(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> dict[str, Any]: ...

    def stream_chat(self, messages: list[dict[str, Any]], *, model: str, **params: Any) -> AsyncIterator[dict[str, Any]]: ...


class Turn:
    """What one model turn produced."""

    __slots__ = ("actions", "text", "thought", "usage")

    def __init__(self) -> None:
        self.text = ""
        self.thought = ""
        self.actions: list[tuple[str, str, str]] = []
        """``(call id, tool name, JSON arguments)`` of each tool call asked for."""
        self.usage: Any = None


class Watchdog:
    """A deadline for a sequence of awaits, armed once: it cancels the waiting task when the
    deadline passes during :meth:`wait`, and a later :meth:`wait` fails at once."""

    __slots__ = ("_handle", "_task", "fired")

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._task: asyncio.Task[Any] | None = None
        self._handle = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self._task is not None:
            self._task.cancel()

    async def wait(self, awaitable: Any) -> Any:
        if self.fired:
            raise TimeoutError
        task = self._task = asyncio.current_task()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.fired and task is not None and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._task = None

    def close(self) -> None:
        self._handle.cancel()


class ModelTurns:
    """Makes the model turns of one run (its model, request context and streaming mode)."""

    __slots__ = ("_route_headers", "ctx", "llm", "model", "run_id", "spec", "stream")

    def __init__(self, spec: AgentSpec, llm: ChatAPI, *, model: str, ctx: RequestContext | None, stream: bool) -> None:
        self.spec = spec
        self.llm = llm
        self.model = model
        self.ctx = ctx
        self.stream = stream
        self.run_id = ""
        self._route_headers: int | None = None

    def request(self, messages: list[dict[str, Any]], *, offer: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        spec = self.spec
        params = dict(spec.params)
        if spec.react:
            params["stop"] = ["\nObservation:"]
            if not offer:
                messages = [*messages, {"role": "user", "content": _WRAP_UP}]
        elif spec.openai_tools:
            params["tools"] = spec.openai_tools
            if not offer:
                params["tool_choice"] = "none"
            elif not spec.config.parallel_tool_calls:
                params["parallel_tool_calls"] = False
        if self.ctx is not None:  # only the Gateway takes a request context; other chat APIs need not
            params["ctx"] = self.ctx
        return messages, params

    def _keep_last_route_headers(self, before: int) -> None:
        """Each model call adds its route's headers to the request context; a run makes many
        calls, so only the latest call's headers are kept for the response."""
        ctx = self.ctx
        if ctx is None:
            return
        if self._route_headers is None:
            self._route_headers = before
        elif before > self._route_headers:
            del ctx.response_headers[self._route_headers : before]

    async def call(self, messages: list[dict[str, Any]], turn: Turn, *, offer: bool, deadline: float) -> str:
        """A blocking turn; returns the text the user may see."""
        sent, params = self.request(messages, offer=offer)
        before = len(self.ctx.response_headers) if self.ctx is not None else 0
        try:
            async with asyncio.timeout_at(deadline):
                response = await self.llm.chat(sent, model=self.model, **params)
        finally:
            self._keep_last_route_headers(before)
        turn.usage = response.get("usage")
        choices = response.get("choices") or [{}]
        message = choices[0].get("message") or {}
        turn.text = message.get("content") or ""
        if self.spec.react and self.spec.tools:
            return self._react_actions(turn, parse_react(turn.text), offer)
        self._openai_actions(turn, message.get("tool_calls") or [], offer)
        return turn.text

    async def streamed(
        self, messages: list[dict[str, Any]], turn: Turn, *, offer: bool, deadline: float
    ) -> AsyncIterator[str]:
        """A streamed turn; yields the text the user may see as it arrives."""
        sent, params = self.request(messages, offer=offer)
        before = len(self.ctx.response_headers) if self.ctx is not None else 0
        react = self.spec.react and bool(self.spec.tools)
        stream = self.llm.stream_chat(sent, model=self.model, stream_options={"include_usage": True}, **params)
        watchdog = Watchdog(deadline)
        pieces: list[str] = []
        partial: dict[int, dict[str, str]] = {}
        filter_ = FinalAnswerFilter() if react else None
        try:
            while True:
                try:
                    chunk = await watchdog.wait(anext(stream))
                except StopAsyncIteration:
                    break
                if chunk.get("usage"):
                    turn.usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        pieces.append(text)
                        visible = filter_.feed(text) if filter_ is not None else text
                        if visible:
                            yield visible
                    for part in delta.get("tool_calls") or ():
                        slot = partial.setdefault(part.get("index", 0), {"id": "", "name": "", "arguments": ""})
                        slot["id"] += part.get("id") or ""
                        function = part.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
        finally:
            watchdog.close()
            close = getattr(stream, "aclose", None)  # async generators: release the upstream now
            if close is not None:
                await close()
            self._keep_last_route_headers(before)
        turn.text = "".join(pieces)
        if filter_ is not None:
            step = parse_react(turn.text)
            self._react_actions(turn, step, offer)
            rest = filter_.rest(step)
            if rest:
                yield rest
        else:
            calls = [
                {"id": slot["id"], "function": {"name": slot["name"], "arguments": slot["arguments"]}}
                for _, slot in sorted(partial.items())
            ]
            self._openai_actions(turn, calls, offer)

    def _openai_actions(self, turn: Turn, calls: list[dict[str, Any]], offer: bool) -> None:
        turn.thought = turn.text
        if not offer:
            return
        for index, call in enumerate(calls):
            function = call.get("function") or {}
            call_id = call.get("id") or f"call_{self.run_id[:8]}_{index}"
            turn.actions.append((call_id, function.get("name") or "", function.get("arguments") or "{}"))

    def _react_actions(self, turn: Turn, step: ReactStep, offer: bool) -> str:
        """Record a parsed ReAct turn in ``turn``; returns the part a user may see (the answer)."""
        turn.thought = step.thought
        if step.action is None:
            return step.final or ""
        if offer:
            turn.actions.append((f"react_{new_id()[:8]}", step.action, step.arguments))
        return ""
