"""The workflow engine: compiled Dify graphs run as one asyncio task per ready node."""

from __future__ import annotations

from .events import (
    Event,
    IterationCompleted,
    IterationNext,
    IterationStarted,
    LoopCompleted,
    LoopNext,
    LoopStarted,
    NodeFinished,
    NodeRetry,
    NodeStarted,
    TextChunk,
    WorkflowFinished,
    WorkflowStarted,
    dify_event,
)
from .graph import Workflow, compile_workflow, load_workflow
from .http import HttpNodeClient, HttpPolicy
from .nodes import NodeFailure, NodeRegistry, Services, default_registry
from .runner import Conversation, RunResult, WorkflowRun, WorkflowRunner
from .runtime import RunLimitExceeded, RunLimits
from .sandbox import CodeLimits, CodeSandbox

__all__ = [
    "CodeLimits",
    "CodeSandbox",
    "Conversation",
    "Event",
    "HttpNodeClient",
    "HttpPolicy",
    "IterationCompleted",
    "IterationNext",
    "IterationStarted",
    "LoopCompleted",
    "LoopNext",
    "LoopStarted",
    "NodeFailure",
    "NodeFinished",
    "NodeRegistry",
    "NodeRetry",
    "NodeStarted",
    "RunLimitExceeded",
    "RunLimits",
    "RunResult",
    "Services",
    "TextChunk",
    "Workflow",
    "WorkflowFinished",
    "WorkflowRun",
    "WorkflowRunner",
    "WorkflowStarted",
    "compile_workflow",
    "default_registry",
    "dify_event",
    "load_workflow",
]
