"""Per-run state shared by every node task of one run: ids, counters, the event channel, limits.

Nodes of one run execute as concurrent tasks on one event loop, so this state needs no locks; it
lives exactly as long as the run and is never shared between runs.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import WorkflowError
from .events import Event
from .pool import VariablePool

if TYPE_CHECKING:
    from .graph import Edge, Workflow
    from .nodes.base import NodeContext, Services
    from .stream import StreamCoordinator

__all__ = ["RunLimitExceeded", "RunLimits", "RunState", "new_id"]


def new_id() -> str:
    return str(uuid.uuid4())


class RunLimits:
    __slots__ = ("max_steps", "node_timeout", "timeout")

    def __init__(self, *, timeout: float = 300.0, node_timeout: float | None = None, max_steps: int = 500) -> None:
        self.timeout = timeout
        self.node_timeout = node_timeout
        """Overrides each node's compiled timeout when set."""
        self.max_steps = max_steps


class RunLimitExceeded(WorkflowError):
    """The run hit its step budget or deadline; not handled by any node's error strategy."""

    code = "workflow_limit_exceeded"


class RunState:
    __slots__ = (
        "_index",
        "coordinator",
        "events",
        "exceptions",
        "history",
        "layers",
        "limits",
        "pool",
        "retriever_resources",
        "run_id",
        "services",
        "steps",
        "text_sink",
        "top_scope",
        "total_tokens",
        "usage",
        "workflow",
        "workflow_id",
    )

    def __init__(
        self,
        *,
        workflow: Workflow,
        services: Services,
        limits: RunLimits,
        pool: VariablePool,
        run_id: str,
        workflow_id: str,
        layers: tuple[Any, ...] = (),
    ) -> None:
        self.workflow = workflow
        self.services = services
        self.limits = limits
        self.pool = pool
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.layers = layers
        # Unbounded on purpose: a run's events are bounded by max_steps and the models' token
        # limits, and the producer side is synchronous (edge processing) so it cannot wait.
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.coordinator: StreamCoordinator | None = None
        self.text_sink: Any = self.emit
        self.history: list[dict[str, Any]] = []
        """Earlier turns of the conversation (chatflows), for LLM memory."""
        self.top_scope: object | None = None
        self.steps = 0
        self._index = 0
        self.total_tokens = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.exceptions = 0
        self.retriever_resources: list[dict[str, Any]] = []
        """Knowledge cited by this run (Dify's ``retriever_resources``), in retrieval order."""

    def emit(self, event: Event) -> None:
        self.events.put_nowait(event)
        for layer in self.layers:
            layer.on_event(event)

    def emit_text(self, event: Event) -> None:
        """Answer text (chat ``message`` events); the runner also collects it into the answer."""
        self.text_sink(event)

    def next_index(self) -> int:
        self._index += 1
        return self._index

    def count_step(self, node_id: str) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise RunLimitExceeded(
                f"workflow exceeded its step budget of {self.limits.max_steps} node runs",
                node_id=node_id,
            )

    # -- answer streaming hooks (top-level graph only) ---------------------------------------------

    def wants_stream(self, ctx: NodeContext, name: str) -> bool:
        """Whether anyone relays this output live (else an LLM node may call without streaming)."""
        coordinator = self.coordinator
        return coordinator is not None and ctx.scope is self.top_scope and (ctx.node.id, name) in coordinator.wanted

    def stream_chunk(self, ctx: NodeContext, name: str, text: str) -> None:
        if self.coordinator is not None and ctx.scope is self.top_scope:
            self.coordinator.chunk(ctx.node.id, name, text)

    def edge_taken(self, edge: Edge, scope: object) -> None:
        if self.coordinator is not None and scope is self.top_scope:
            self.coordinator.edge_taken(edge)

    def node_done(self, node_id: str, scope: object) -> None:
        if self.coordinator is not None and scope is self.top_scope:
            self.coordinator.node_done(node_id)
