"""Agents: a tool registry, the tool-calling loop and its runtime (see ``runtime.py``)."""

from __future__ import annotations

from .events import (
    AgentEvent,
    AgentFinished,
    AgentLog,
    AgentMessage,
    AgentResult,
    AgentStarted,
    AgentThought,
    Usage,
)
from .loop import AgentRun, AgentSpec
from .runtime import AgentRuntime
from .tools import Tool, ToolContext, ToolOutcome, ToolRegistry

__all__ = [
    "AgentEvent",
    "AgentFinished",
    "AgentLog",
    "AgentMessage",
    "AgentResult",
    "AgentRun",
    "AgentRuntime",
    "AgentSpec",
    "AgentStarted",
    "AgentThought",
    "Tool",
    "ToolContext",
    "ToolOutcome",
    "ToolRegistry",
    "Usage",
]
