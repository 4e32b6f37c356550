"""Which node types this tidegate can run: built-in families plus extension points.

A registry is an ordinary object the Gateway builds (no import-time registration): capabilities
that arrive later — knowledge bases, tools, agents — call :meth:`NodeRegistry.register` on it.
Until then their node types fail at load with a message naming the missing capability.
"""

from __future__ import annotations

from .base import Node

__all__ = ["EXTENSION_POINTS", "NodeRegistry", "default_registry"]

EXTENSION_POINTS: dict[str, str] = {
    "knowledge-retrieval": "knowledge bases (the `knowledge:` section and a knowledge-retrieval node)",
    "tool": "tools (the `tools:` section and a tool node)",
    "agent": "agents (an agent node)",
    "document-extractor": "document extraction",
    "list-operator": "list operations",
}


class NodeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}

    def register(self, cls: type[Node], *, name: str | None = None) -> None:
        self._types[name or cls.type] = cls

    def get(self, node_type: str) -> type[Node] | None:
        return self._types.get(node_type)

    def missing(self, node_type: str) -> str:
        capability = EXTENSION_POINTS.get(node_type)
        if capability is not None:
            return (
                f"Expected a node type this tidegate can run, got `{node_type}`, which needs {capability};"
                " that capability is not available yet"
            )
        return f"Expected a node type this tidegate can run, got `{node_type}`"

    def __contains__(self, node_type: str) -> bool:
        return node_type in self._types

    def copy(self) -> NodeRegistry:
        clone = NodeRegistry()
        clone._types = dict(self._types)
        return clone


def default_registry() -> NodeRegistry:
    """A fresh registry with every built-in node family."""
    from . import (
        aggregator,
        assigner,
        classifier,
        code,
        extractor,
        http,
        if_else,
        iteration,
        llm,
        loop,
        output,
        start,
        transform,
    )

    registry = NodeRegistry()
    for module in (
        start, output, transform, if_else, aggregator, assigner, code, http, iteration, loop, llm,
        classifier, extractor,
    ):  # fmt: skip
        for cls in module.NODES:
            registry.register(cls)
    registry.register(aggregator.VariableAggregatorNode, name="variable-assigner")
    return registry
