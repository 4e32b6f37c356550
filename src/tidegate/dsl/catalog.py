"""What the Dify DSL vocabulary says about each node type: its outputs and its branch handles.

This is knowledge of the *format* (which variables a Dify node of a type exposes to later nodes,
which ``sourceHandle`` values its edges may carry), so references can be checked at load without
running anything. Which types tidegate can actually run is the engine's node registry's business.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTAINER_START", "DIFY_NODE_TYPES", "branch_handles", "node_outputs"]

DIFY_NODE_TYPES = frozenset(
    {
        "start",
        "end",
        "answer",
        "llm",
        "knowledge-retrieval",
        "question-classifier",
        "if-else",
        "code",
        "template-transform",
        "http-request",
        "tool",
        "variable-aggregator",
        "variable-assigner",  # the aggregator's name before Dify 0.6
        "assigner",
        "parameter-extractor",
        "iteration",
        "iteration-start",
        "loop",
        "loop-start",
        "loop-end",
        "agent",
        "document-extractor",
        "list-operator",
    }
)

CONTAINER_START = {"iteration": "iteration-start", "loop": "loop-start"}

_FIXED_OUTPUTS: dict[str, frozenset[str]] = {
    "answer": frozenset({"answer", "files"}),
    "llm": frozenset({"text", "usage", "finish_reason", "reasoning_content", "structured_output", "files"}),
    "knowledge-retrieval": frozenset({"result"}),
    "question-classifier": frozenset({"class_name", "class_id", "class_label", "usage"}),
    "if-else": frozenset({"result", "selected_case_id"}),
    "template-transform": frozenset({"output"}),
    "http-request": frozenset({"status_code", "body", "headers", "files"}),
    "iteration": frozenset({"output", "item", "index"}),
    "iteration-start": frozenset(),
    "loop-start": frozenset(),
    "loop-end": frozenset(),
    "assigner": frozenset(),
    "document-extractor": frozenset({"text"}),
    "list-operator": frozenset({"result", "first_record", "last_record"}),
}

_ERROR_OUTPUTS = frozenset({"error_message", "error_type"})


def node_outputs(node_type: str, data: dict[str, Any], *, chat: bool) -> frozenset[str] | None:
    """Variable names later nodes may read from a node; ``None`` when the DSL cannot tell."""
    outputs = _outputs(node_type, data, chat=chat)
    if outputs is None:
        return None
    if data.get("error_strategy") in ("fail-branch", "default-value"):
        outputs = outputs | _ERROR_OUTPUTS
    return outputs


def _outputs(node_type: str, data: dict[str, Any], *, chat: bool) -> frozenset[str] | None:
    fixed = _FIXED_OUTPUTS.get(node_type)
    if fixed is not None:
        return fixed
    if node_type == "start":
        names = {v.get("variable") for v in data.get("variables") or [] if isinstance(v, dict)}
        return frozenset(name for name in names if isinstance(name, str))
    if node_type == "end":
        return frozenset(
            o["variable"] for o in data.get("outputs") or [] if isinstance(o, dict) and "variable" in o
        )
    if node_type == "code":
        outputs = data.get("outputs")
        return frozenset(outputs) if isinstance(outputs, dict) else frozenset()
    if node_type in ("variable-aggregator", "variable-assigner"):
        settings = data.get("advanced_settings") or {}
        if isinstance(settings, dict) and settings.get("group_enabled"):
            return frozenset(
                g["group_name"] for g in settings.get("groups") or [] if isinstance(g, dict) and "group_name" in g
            )
        return frozenset({"output"})
    if node_type == "parameter-extractor":
        names = {p.get("name") for p in data.get("parameters") or [] if isinstance(p, dict)}
        return frozenset(n for n in names if isinstance(n, str)) | {"__is_success", "__reason", "__usage"}
    if node_type == "loop":
        labels = {v.get("label") for v in data.get("loop_variables") or [] if isinstance(v, dict)}
        return frozenset(n for n in labels if isinstance(n, str)) | {"loop_round", "index"}
    return None  # tool, agent: their outputs come from the tool's schema


def branch_handles(node_type: str, data: dict[str, Any]) -> frozenset[str] | None:
    """The ``sourceHandle`` values a branching node's edges may carry (``None``: not a branch)."""
    handles: set[str] = set()
    if node_type == "if-else":
        cases = data.get("cases")
        if isinstance(cases, list) and cases:
            handles = {str(c.get("case_id")) for c in cases if isinstance(c, dict)}
            handles.add("false")
        else:
            handles = {"true", "false"}
    elif node_type == "question-classifier":
        handles = {str(c.get("id")) for c in data.get("classes") or [] if isinstance(c, dict)}
    else:
        return None
    if data.get("error_strategy") == "fail-branch":
        handles.add("fail-branch")
    return frozenset(handles)
