"""Builders for Dify DSL documents the way Dify exports them (shared by engine and DSL tests)."""

from __future__ import annotations

from typing import Any


def node(node_id: str, node_type: str, title: str = "", parent: str | None = None, **data: Any) -> dict[str, Any]:
    """A node the way Dify exports it, with the UI keys a real export carries."""
    out: dict[str, Any] = {
        "id": node_id,
        "type": "custom",
        "position": {"x": 0, "y": 0},
        "width": 244,
        "height": 90,
        "selected": False,
        "data": {"type": node_type, "title": title or node_type, "desc": "", "selected": False, **data},
    }
    if parent:
        out["parentId"] = parent
    return out


def edge(source: str, target: str, handle: str = "source") -> dict[str, Any]:
    return {
        "id": f"{source}-{handle}-{target}-target",
        "source": source,
        "sourceHandle": handle,
        "target": target,
        "targetHandle": "target",
        "type": "custom",
        "data": {"sourceType": "x", "targetType": "y", "isInIteration": False},
    }


def dsl(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], *, mode: str = "workflow",
        version: str = "0.6.0", **workflow: Any) -> dict[str, Any]:
    return {
        "app": {"name": "test app", "mode": mode, "icon": "🤖", "description": "a test"},
        "kind": "app",
        "version": version,
        "workflow": {
            "graph": {"nodes": nodes, "edges": edges, "viewport": {"x": 0, "y": 0, "zoom": 1}},
            "features": {"opening_statement": ""},
            "environment_variables": workflow.pop("environment_variables", []),
            "conversation_variables": workflow.pop("conversation_variables", []),
            **workflow,
        },
    }


def simple_dsl() -> dict[str, Any]:
    """start(x) → template → end(out)."""
    return dsl(
        [
            node("start", "start", "Start", variables=[{"variable": "x", "label": "x", "type": "text-input", "required": True}]),
            node("tpl", "template-transform", "Template", template="hi {{ x }}",
                 variables=[{"variable": "x", "value_selector": ["start", "x"]}]),
            node("end", "end", "End", outputs=[{"variable": "out", "value_selector": ["tpl", "output"]}]),
        ],
        [edge("start", "tpl"), edge("tpl", "end")],
    )
