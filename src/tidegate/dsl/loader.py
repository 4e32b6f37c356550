"""Read a Dify DSL export (app DSL 0.1.x – 0.6.0) into a :class:`WorkflowSpec`.

Dify's exports carry UI state (positions, ``selected`` flags, notes) and three generations of
conventions; the loader normalises those here so nothing downstream sees them: ``custom-note``
nodes are dropped, ``success-branch`` handles become ``source``, iteration containers exported
before ``iteration-start`` existed get one synthesised, and numeric ids become strings. Every
problem is collected, then :func:`~tidegate.dsl.validate.validate_spec` adds the graph checks and
one :class:`ConfigError` lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .spec import ConversationVariable, EdgeSpec, EnvVariable, NodeSpec, WorkflowSpec
from .validate import validate_spec

__all__ = ["MAX_VERSION", "MIN_VERSION", "load_dsl", "parse_dsl", "read_dsl"]

MIN_VERSION = (0, 1, 0)
MAX_VERSION = (0, 6, 0)
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_NODE_ID = re.compile(r"^[A-Za-z0-9_]{1,50}$")
_MODES = ("workflow", "advanced-chat")


def load_dsl(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> WorkflowSpec:
    """Load and validate one DSL file; raises one ConfigError listing every problem."""
    spec, issues = read_dsl(path, env=env)
    if issues or spec is None:
        raise ConfigError(issues, source=str(path))
    return spec


def read_dsl(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> tuple[WorkflowSpec | None, list[str]]:
    """Like :func:`load_dsl` but returns the problems instead of raising (for callers that add
    their own checks before reporting everything at once)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return None, [f"Cannot read DSL file `{source}`: {exc.strerror or exc}"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [f"Invalid YAML{where}: {problem} ({source})"]
    return parse_dsl(data, source=source, env=env)


def parse_dsl(
    data: object, *, source: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[WorkflowSpec | None, list[str]]:
    """Normalise and validate already-parsed DSL data. Issues carry the source file name.

    The spec is returned whenever the document had a readable graph, even with problems, so a
    compiler can add its own findings before everything is reported together.
    """
    issues: list[str] = []
    spec = _build(data, issues, env or {})
    if spec is not None:
        spec.source = source
        if not issues:
            issues.extend(validate_spec(spec))
    if source:
        issues = [f"{issue} ({source})" for issue in issues]
    return spec, issues


def _build(data: object, issues: list[str], env: Mapping[str, str]) -> WorkflowSpec | None:
    if not isinstance(data, dict):
        issues.append(
            f"Expected a Dify DSL document (a mapping with `app` and `workflow`), got `{_kind(data)}` - at `$`"
        )
        return None
    version = _version(data.get("version", "0.1.0"), issues)
    kind = data.get("kind", "app")
    if kind != "app":
        issues.append(f"Expected `kind: app`, got `{kind}` - at `$.kind`")
    app = data.get("app")
    if not isinstance(app, dict):
        issues.append(f"Expected `app` to be a mapping, got `{_kind(app)}` - at `$.app`")
        app = {}
    mode = app.get("mode")
    if mode not in _MODES:
        hint = ""
        if mode in ("chat", "agent-chat", "completion"):
            hint = f" (a `{mode}` app has no workflow graph; tidegate runs workflow and chatflow apps)"
        issues.append(f"Expected app mode `workflow` or `advanced-chat`, got `{mode}`{hint} - at `$.app.mode`")
        mode = "workflow"
    workflow = data.get("workflow")
    if not isinstance(workflow, dict):
        issues.append(f"Expected `workflow` to be a mapping, got `{_kind(workflow)}` - at `$.workflow`")
        return None
    graph = workflow.get("graph")
    if not isinstance(graph, dict):
        issues.append(f"Expected `graph` to be a mapping, got `{_kind(graph)}` - at `$.workflow.graph`")
        return None
    features = workflow.get("features")
    spec = WorkflowSpec(
        mode="advanced-chat" if mode == "advanced-chat" else "workflow",
        version=version,
        name=str(app.get("name") or ""),
        description=str(app.get("description") or ""),
        features=features if isinstance(features, dict) else {},
    )
    notes = _nodes(graph.get("nodes"), spec, issues)
    _edges(graph.get("edges"), spec, notes, issues)
    _synthesise_iteration_starts(spec)
    spec.env = _env(workflow.get("environment_variables"), env, issues)
    spec.conversation = _conversation(workflow.get("conversation_variables"), issues)
    return spec


def _version(value: object, issues: list[str]) -> str:
    text = str(value)
    match = _VERSION.match(text)
    if match is None:
        issues.append(f"Expected a DSL version like `0.6.0`, got `{text}` - at `$.version`")
        return text
    parts = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    if not MIN_VERSION <= parts <= MAX_VERSION:
        issues.append(f"Expected a Dify DSL version from 0.1.0 to 0.6.0, got `{text}` - at `$.version`")
    return text


def _nodes(raw: object, spec: WorkflowSpec, issues: list[str]) -> set[str]:
    """Fill ``spec.nodes``; returns the ids of dropped note nodes (edges to them are ignored)."""
    notes: set[str] = set()
    if not isinstance(raw, list):
        issues.append(f"Expected `nodes` to be a list, got `{_kind(raw)}` - at `$.workflow.graph.nodes`")
        return notes
    for index, item in enumerate(raw):
        path = f"$.workflow.graph.nodes[{index}]"
        if not isinstance(item, dict):
            issues.append(f"Expected a node mapping, got `{_kind(item)}` - at `{path}`")
            continue
        data = item.get("data")
        node_id = _id(item.get("id"))
        if item.get("type") == "custom-note" or (isinstance(data, dict) and data.get("type") == "custom-note"):
            if node_id:
                notes.add(node_id)
            continue
        if not isinstance(data, dict):
            issues.append(f"Expected node `data` to be a mapping, got `{_kind(data)}` - at `{path}.data`")
            continue
        title = str(data.get("title") or "")
        where = f"node `{node_id}` ({title})" if title else f"node `{node_id}`"
        if node_id is None or not _NODE_ID.match(node_id):
            issues.append(
                f"Expected a node id of 1-50 letters, digits or `_`, got `{item.get('id')}` - at `{path}.id`"
                + (f" in node ({title})" if title else "")
            )
            continue
        if node_id in spec.nodes:
            issues.append(f"Expected unique node ids, got `{node_id}` twice - at `{path}.id` in {where}")
            continue
        node_type = data.get("type")
        if not isinstance(node_type, str) or not node_type:
            issues.append(f"Expected a node type, got `{_kind(node_type)}` - at `{path}.data.type` in {where}")
            continue
        spec.nodes[node_id] = NodeSpec(
            id=node_id, type=node_type, title=title, data=data, parent=_parent(item, data), path=path
        )
    return notes


def _parent(item: dict[str, Any], data: dict[str, Any]) -> str | None:
    parent = _id(item.get("parentId"))
    if parent:
        return parent
    if data.get("isInIteration") and data.get("iteration_id"):
        return _id(data["iteration_id"])
    if data.get("isInLoop") and data.get("loop_id"):
        return _id(data["loop_id"])
    return None


def _edges(raw: object, spec: WorkflowSpec, notes: set[str], issues: list[str]) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        issues.append(f"Expected `edges` to be a list, got `{_kind(raw)}` - at `$.workflow.graph.edges`")
        return
    for index, item in enumerate(raw):
        path = f"$.workflow.graph.edges[{index}]"
        if not isinstance(item, dict):
            issues.append(f"Expected an edge mapping, got `{_kind(item)}` - at `{path}`")
            continue
        source, target = _id(item.get("source")), _id(item.get("target"))
        if source in notes or target in notes:
            continue
        if not source or not target:
            field = "source" if not source else "target"
            issues.append(f"Expected an edge {field} node id, got `{item.get(field)}` - at `{path}.{field}`")
            continue
        handle = item.get("sourceHandle") or "source"
        handle = "source" if handle == "success-branch" else str(handle)
        edge_id = str(item.get("id") or f"{source}-{handle}-{target}")
        spec.edges.append(EdgeSpec(id=edge_id, source=source, target=target, source_handle=handle, path=path))


def _synthesise_iteration_starts(spec: WorkflowSpec) -> None:
    """DSLs from before Dify 0.14 start an iteration at ``start_node_id`` with no start node."""
    for node in list(spec.nodes.values()):
        if node.type != "iteration":
            continue
        children = spec.children(node.id)
        if any(child.type == "iteration-start" for child in children):
            continue
        first = _id(node.data.get("start_node_id"))
        if first is None or first not in spec.nodes or spec.nodes[first].parent != node.id:
            continue
        start_id = f"{node.id}start"
        while start_id in spec.nodes:
            start_id += "_"
        spec.nodes[start_id] = NodeSpec(
            id=start_id,
            type="iteration-start",
            title="",
            data={"type": "iteration-start", "title": "", "isInIteration": True},
            parent=node.id,
            path=node.path,
        )
        spec.edges.append(
            EdgeSpec(id=f"{start_id}-source-{first}", source=start_id, target=first, path=node.path)
        )
        spec.nodes[node.id] = NodeSpec(
            id=node.id,
            type=node.type,
            title=node.title,
            data={**node.data, "start_node_id": start_id},
            parent=node.parent,
            path=node.path,
        )


def _env(raw: object, overrides: Mapping[str, str], issues: list[str]) -> list[EnvVariable]:
    found: dict[str, EnvVariable] = {}
    for index, item in enumerate(raw or [] if isinstance(raw, list) else []):
        path = f"$.workflow.environment_variables[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            issues.append(f"Expected an environment variable with a `name`, got `{_kind(item)}` - at `{path}`")
            continue
        value_type = str(item.get("value_type") or "string")
        if value_type not in ("string", "number", "secret"):
            issues.append(
                f"Expected an environment variable type `string`, `number` or `secret`, got `{value_type}` - at `{path}.value_type`"
            )
        found[item["name"]] = EnvVariable(name=item["name"], value_type=value_type, value=item.get("value"))
    for name, value in overrides.items():
        declared = found.get(name)
        value_type = declared.value_type if declared else "string"
        typed: Any = value
        if value_type == "number":
            try:
                typed = float(value) if "." in value else int(value)
            except ValueError:
                issues.append(f"Expected a number for environment variable `{name}`, got `{value}` - at `$.env.{name}`")
        found[name] = EnvVariable(name=name, value_type=value_type, value=typed)
    return list(found.values())


def _conversation(raw: object, issues: list[str]) -> list[ConversationVariable]:
    out: list[ConversationVariable] = []
    for index, item in enumerate(raw or [] if isinstance(raw, list) else []):
        path = f"$.workflow.conversation_variables[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            issues.append(f"Expected a conversation variable with a `name`, got `{_kind(item)}` - at `{path}`")
            continue
        out.append(
            ConversationVariable(
                name=item["name"],
                value_type=str(item.get("value_type") or "string"),
                value=item.get("value"),
                description=str(item.get("description") or ""),
            )
        )
    return out


def _id(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}.get(
        type(value), type(value).__name__
    )
