"""The graph spec a Dify DSL file becomes: nodes, edges and variables, with UI noise removed.

The spec keeps each node's ``data`` as the DSL wrote it (after the loader's normalisation) because
the engine's node modules own their typed view of it; what the spec adds is the structure the
validator and the compiler both need: parents (iteration/loop containers), normalised edge
handles, and where in the file each element came from, so every message can point there.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ConversationVariable", "EdgeSpec", "EnvVariable", "NodeSpec", "WorkflowSpec"]

Mode = Literal["workflow", "advanced-chat"]


class NodeSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    title: str
    data: dict[str, Any]
    parent: str | None = None
    """The iteration or loop node this node runs inside, if any."""
    path: str = "$"
    """Where the node is in the file (``$.workflow.graph.nodes[3]``), for messages."""

    def where(self) -> str:
        """How messages name the node: its id and, when it has one, its title."""
        return f"node `{self.id}` ({self.title})" if self.title else f"node `{self.id}`"


class EdgeSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    target: str
    source_handle: str = "source"
    path: str = "$"


class EnvVariable(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    value_type: str = "string"
    value: Any = None


class ConversationVariable(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    value_type: str = "string"
    value: Any = None
    description: str = ""


class WorkflowSpec(msgspec.Struct, kw_only=True):
    """One DSL file, normalised. ``nodes`` keeps file order (it is the order Dify shows them)."""

    mode: Mode
    version: str
    name: str = ""
    description: str = ""
    source: str | None = None
    nodes: dict[str, NodeSpec] = msgspec.field(default_factory=dict)
    edges: list[EdgeSpec] = msgspec.field(default_factory=list)
    env: list[EnvVariable] = msgspec.field(default_factory=list)
    conversation: list[ConversationVariable] = msgspec.field(default_factory=list)
    features: dict[str, Any] = msgspec.field(default_factory=dict)

    def children(self, parent: str | None) -> list[NodeSpec]:
        return [node for node in self.nodes.values() if node.parent == parent]

    def start_node(self) -> NodeSpec | None:
        for node in self.nodes.values():
            if node.type == "start" and node.parent is None:
                return node
        return None
