"""What an agent run reports while it works, shaped for Dify's stream.

:class:`AgentThought` carries exactly the keys of Dify's ``agent_thought`` event (a surface adds
``task_id``, ``message_id`` and ``conversation_id``); :class:`AgentLog` those of ``agent_log``
(the workflow node adds ``node_id`` / ``node_execution_id``); :class:`AgentMessage` is one piece
of the streamed answer (Dify's ``agent_message``). A run ends with :class:`AgentFinished`, whose
``result`` is what the blocking API returns.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import msgspec

__all__ = [
    "AgentEvent",
    "AgentFinished",
    "AgentLog",
    "AgentMessage",
    "AgentResult",
    "AgentStarted",
    "AgentThought",
    "RunStatus",
    "Usage",
    "dify_agent_event",
    "new_id",
]

RunStatus = Literal["succeeded", "max_steps", "max_tool_calls", "token_budget", "timeout"]
"""How a run ended: ``succeeded`` (the model gave a final answer on its own) or which cap ended
it (the answer is then the model's wrap-up, or a fixed sentence when no model call was left)."""


def new_id() -> str:
    """A random UUID4 string, about 3x cheaper than ``str(uuid.uuid4())`` (runs make dozens)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class Usage(msgspec.Struct, kw_only=True, gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, usage: object) -> None:
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            self.prompt_tokens += int(prompt)
            self.completion_tokens += int(completion)
            self.total_tokens += int(usage.get("total_tokens") or prompt + completion)


class AgentEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "agent_event"


class AgentStarted(AgentEvent, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "agent_started"
    run_id: str
    agent: str
    conversation_id: str | None
    created_at: int


class AgentThought(AgentEvent, frozen=True, kw_only=True, gc=False):
    """One step: sent when the model picks its tools (empty ``observation``) and again with the
    results. Several parallel tools are joined as Dify does: ``tool`` is ``a;b`` and
    ``tool_input`` / ``observation`` are JSON objects keyed by tool name."""

    kind: ClassVar[str] = "agent_thought"
    id: str
    position: int
    thought: str
    observation: str
    tool: str
    tool_input: str
    tool_labels: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: int
    message_files: list[str] = msgspec.field(default_factory=list)


class AgentLog(AgentEvent, frozen=True, kw_only=True, gc=False):
    """A tree of log entries (rounds → model call / tool calls), as Dify's agent strategies log."""

    kind: ClassVar[str] = "agent_log"
    id: str
    label: str
    parent_id: str | None
    status: Literal["start", "success", "error"]
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    error: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class AgentMessage(AgentEvent, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "agent_message"
    answer: str


class AgentResult(msgspec.Struct, kw_only=True):
    """Everything a blocking caller gets back from one run."""

    run_id: str
    agent: str
    status: RunStatus
    answer: str
    steps: int
    """Model turns that offered tools."""
    tool_calls: int
    usage: Usage
    elapsed_time: float
    conversation_id: str | None = None
    message_id: str | None = None
    thoughts: list[AgentThought] = msgspec.field(default_factory=list)


class AgentFinished(AgentEvent, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "agent_finished"
    result: AgentResult


def dify_agent_event(
    event: AgentEvent, *, task_id: str, message_id: str, conversation_id: str | None
) -> dict[str, Any] | None:
    """An agent run's event as Dify's chat stream spells it (flat, with the message's ids):
    ``agent_thought``, ``agent_message`` and a closing ``message_end``; ``None`` for events a
    chat client does not get (the step log belongs to workflow streams)."""
    ids = {"task_id": task_id, "message_id": message_id, "conversation_id": conversation_id}
    if isinstance(event, AgentThought):
        return {"event": "agent_thought", **msgspec.to_builtins(event), **ids, "id": event.id}
    if isinstance(event, AgentMessage):
        return {"event": "agent_message", **ids, "id": message_id, "answer": event.answer,
                "created_at": 0}  # fmt: skip
    if isinstance(event, AgentFinished):
        usage = event.result.usage
        return {"event": "message_end", **ids, "id": message_id,
                "metadata": {"usage": msgspec.to_builtins(usage), "agent": {
                    "status": event.result.status, "steps": event.result.steps,
                    "tool_calls": event.result.tool_calls}}}  # fmt: skip
    return None
