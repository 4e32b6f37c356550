"""Run events, shaped like the ``data`` objects of Dify's service-API stream.

Each event struct's fields are exactly the keys Dify puts under ``data`` (its ``kind`` is the SSE
``event`` name), so a surface wraps one with ``task_id`` / ``workflow_run_id`` and encodes it with
msgspec without copying. Layers (metrics, tracing) observe the same objects.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

__all__ = [
    "Event",
    "IterationCompleted",
    "IterationNext",
    "IterationStarted",
    "LoopCompleted",
    "LoopNext",
    "LoopStarted",
    "NodeFinished",
    "NodeRetry",
    "NodeStarted",
    "TextChunk",
    "WorkflowFinished",
    "WorkflowStarted",
    "dify_event",
]


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "event"


class WorkflowStarted(Event, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "workflow_started"
    id: str
    workflow_id: str
    inputs: dict[str, Any]
    created_at: int
    reason: str = "initial"


class _NodeBase(Event, frozen=True, kw_only=True, gc=False):
    id: str
    node_id: str
    node_type: str
    title: str
    index: int
    predecessor_node_id: str | None = None
    inputs: dict[str, Any] | None = None
    created_at: int
    extras: dict[str, Any] = msgspec.field(default_factory=dict)
    iteration_id: str | None = None
    loop_id: str | None = None


class NodeStarted(_NodeBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "node_started"


class NodeFinished(_NodeBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "node_finished"
    process_data: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    status: str
    """``succeeded``, ``failed``, ``exception`` (failed but handled by its error strategy) or
    ``stopped``."""
    error: str | None = None
    elapsed_time: float
    execution_metadata: dict[str, Any] | None = None
    finished_at: int
    files: list[dict[str, Any]] = msgspec.field(default_factory=list)


class NodeRetry(NodeFinished, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "node_retry"
    retry_index: int


class TextChunk(Event, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "text_chunk"
    text: str
    from_variable_selector: list[str] | None = None


class _ContainerBase(Event, frozen=True, kw_only=True, gc=False):
    id: str
    node_id: str
    node_type: str
    title: str
    created_at: int
    extras: dict[str, Any] = msgspec.field(default_factory=dict)


class IterationStarted(_ContainerBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "iteration_started"
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class IterationNext(_ContainerBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "iteration_next"
    index: int


class _ContainerDone(_ContainerBase, frozen=True, kw_only=True, gc=False):
    outputs: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    status: str
    error: str | None = None
    elapsed_time: float
    total_tokens: int = 0
    execution_metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    finished_at: int
    steps: int


class IterationCompleted(_ContainerDone, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "iteration_completed"


class LoopStarted(_ContainerBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "loop_started"
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class LoopNext(_ContainerBase, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "loop_next"
    index: int
    pre_loop_output: Any = None


class LoopCompleted(_ContainerDone, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "loop_completed"


class WorkflowFinished(Event, frozen=True, kw_only=True, gc=False):
    kind: ClassVar[str] = "workflow_finished"
    id: str
    workflow_id: str
    status: str
    """``succeeded``, ``partial-succeeded``, ``failed`` or ``stopped``."""
    outputs: dict[str, Any] | None = None
    error: str | None = None
    elapsed_time: float
    total_tokens: int
    total_steps: int
    created_at: int
    finished_at: int
    exceptions_count: int = 0
    files: list[dict[str, Any]] = msgspec.field(default_factory=list)


def dify_event(event: Event, *, task_id: str, workflow_run_id: str) -> dict[str, Any]:
    """The event as Dify's stream spells it: ``{event, task_id, workflow_run_id, data}``."""
    return {
        "event": event.kind,
        "task_id": task_id,
        "workflow_run_id": workflow_run_id,
        "data": msgspec.to_builtins(event),
    }
