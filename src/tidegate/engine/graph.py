"""Compile a :class:`WorkflowSpec` into runnable graphs, once, at load.

The top level and each iteration/loop body become a :class:`Graph` (nodes, out-edges, in-edge
counts, root). Node data is typed by each node family; retry, error strategy and default values
become a :class:`NodePolicy`. Everything found wrong — structural problems from the DSL validator,
data problems from the node families, node types this tidegate cannot run — is reported in one
:class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..dsl.catalog import DIFY_NODE_TYPES
from ..dsl.loader import parse_dsl, read_dsl
from ..dsl.spec import NodeSpec, WorkflowSpec
from ..errors import ConfigError
from .nodes.base import Compiler, Node
from .nodes.registry import NodeRegistry, default_registry
from .template import make_jinja_env

__all__ = ["Edge", "Graph", "NodePolicy", "Workflow", "compile_workflow", "load_workflow"]

DEFAULT_NODE_TIMEOUT = 120.0


class Edge:
    __slots__ = ("handle", "id", "source", "target")

    def __init__(self, id: str, source: str, target: str, handle: str) -> None:
        self.id = id
        self.source = source
        self.target = target
        self.handle = handle

    def __repr__(self) -> str:
        return f"Edge({self.source!r}-{self.handle}->{self.target!r})"


class _Retry(msgspec.Struct):
    retry_enabled: bool = False
    max_retries: int = 0
    retry_interval: float = 0  # milliseconds, as Dify writes it


class _DefaultValue(msgspec.Struct):
    key: str
    type: str = "string"
    value: Any = None


class NodePolicy:
    """How the scheduler treats one node's failures and how long one attempt may take."""

    __slots__ = ("defaults", "error_strategy", "max_retries", "retry_interval", "timeout")

    def __init__(
        self,
        *,
        max_retries: int = 0,
        retry_interval: float = 0.0,
        error_strategy: Literal["fail-branch", "default-value"] | None = None,
        defaults: dict[str, Any] | None = None,
        timeout: float = DEFAULT_NODE_TIMEOUT,
    ) -> None:
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self.error_strategy = error_strategy
        self.defaults = defaults or {}
        self.timeout = timeout


class Graph:
    """One scope to schedule: the top level or one container's body."""

    __slots__ = ("container", "in_count", "nodes", "order", "out_edges", "response_nodes", "root")

    def __init__(self, root: str, container: str | None) -> None:
        self.root = root
        self.container = container
        self.nodes: dict[str, Node] = {}
        self.out_edges: dict[str, list[Edge]] = defaultdict(list)
        self.in_count: dict[str, int] = defaultdict(int)
        self.order: dict[str, int] = {}
        self.response_nodes: list[str] = []


class Workflow:
    """A compiled DSL: what a runner executes. Immutable after load; shared by all runs."""

    def __init__(self, spec: WorkflowSpec, graphs: dict[str | None, Graph], nodes: dict[str, Node]) -> None:
        self.spec = spec
        self.graphs = graphs
        self.nodes = nodes
        self.mode = spec.mode
        self.name = spec.name
        self.source = spec.source
        self.env: dict[str, Any] = {var.name: var.value for var in spec.env}
        self.conversation_defaults: dict[str, Any] = {
            var.name: _default_of(var.value_type, var.value) for var in spec.conversation
        }
        self.graph = graphs[None]

    @property
    def start(self) -> Node:
        return self.nodes[self.graph.root]

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, mode={self.mode!r}, nodes={len(self.nodes)})"


def load_workflow(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    registry: NodeRegistry | None = None,
    capabilities: frozenset[str] = frozenset(),
    node_timeout: float = DEFAULT_NODE_TIMEOUT,
    datasets: Mapping[str, str] | None = None,
) -> Workflow:
    """Read, validate and compile a DSL file; one ConfigError lists every problem found."""
    spec, issues = read_dsl(path, env=env)
    if spec is None:
        raise ConfigError(issues, source=str(path))
    return _compile(spec, issues, registry, capabilities, node_timeout, datasets)


def compile_workflow(
    spec: WorkflowSpec | dict[str, Any],
    *,
    registry: NodeRegistry | None = None,
    capabilities: frozenset[str] = frozenset(),
    node_timeout: float = DEFAULT_NODE_TIMEOUT,
    source: str | None = None,
    datasets: Mapping[str, str] | None = None,
) -> Workflow:
    """Compile a spec (from :func:`~tidegate.dsl.load_dsl`) or raw DSL data."""
    issues: list[str] = []
    if isinstance(spec, dict):
        parsed, issues = parse_dsl(spec, source=source)
        if parsed is None:
            raise ConfigError(issues, source=source)
        spec = parsed
    return _compile(spec, issues, registry, capabilities, node_timeout, datasets)


def _compile(
    spec: WorkflowSpec,
    issues: list[str],
    registry: NodeRegistry | None,
    capabilities: frozenset[str],
    node_timeout: float,
    datasets: Mapping[str, str] | None = None,
) -> Workflow:
    registry = registry or default_registry()
    compiler = Compiler(spec, jinja=make_jinja_env(), capabilities=capabilities, datasets=datasets)
    nodes: dict[str, Node] = {}
    for node_spec in spec.nodes.values():
        node = _build_node(node_spec, compiler, registry, node_timeout)
        if node is not None:
            nodes[node.id] = node
    suffix = f" ({spec.source})" if spec.source else ""
    issues = issues + [issue + suffix for issue in compiler.issues]
    if issues:
        raise ConfigError(issues, source=spec.source)
    return Workflow(spec, _graphs(spec, nodes), nodes)


def _build_node(spec: NodeSpec, compiler: Compiler, registry: NodeRegistry, timeout: float) -> Node | None:
    cls = registry.get(spec.type)
    if cls is None:
        if spec.type in DIFY_NODE_TYPES:  # other types were already reported by the DSL checker
            compiler.problem(spec, registry.missing(spec.type), "type")
        return None
    before = len(compiler.issues)
    node = cls(spec, compiler)
    node.policy = _policy(spec, compiler, timeout)  # type: ignore[attr-defined]
    return node if len(compiler.issues) == before else None


def _policy(spec: NodeSpec, compiler: Compiler, timeout: float) -> NodePolicy:
    data = spec.data
    retry = compiler.convert(spec, _Retry, data.get("retry_config") or {}) or _Retry()
    strategy = data.get("error_strategy") or None
    if strategy not in (None, "fail-branch", "default-value"):
        compiler.problem(spec, f"Expected `fail-branch` or `default-value`, got `{strategy}`", "error_strategy")
        strategy = None
    defaults: dict[str, Any] = {}
    if strategy == "default-value":
        for item in compiler.convert(spec, list[_DefaultValue], data.get("default_value") or []) or []:
            defaults[item.key] = _typed_default(spec, compiler, item)
    return NodePolicy(
        max_retries=max(0, retry.max_retries) if retry.retry_enabled else 0,
        retry_interval=max(0.0, retry.retry_interval / 1000.0),
        error_strategy=strategy,
        defaults=defaults,
        timeout=timeout,
    )


def _typed_default(spec: NodeSpec, compiler: Compiler, item: _DefaultValue) -> Any:
    """Dify writes non-string defaults as JSON text in the editor; accept both."""
    value = item.value
    if item.type == "string":
        return "" if value is None else str(value)
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value) if item.type != "number" else float(value)
        except (msgspec.DecodeError, ValueError):
            compiler.problem(spec, f"Expected a `{item.type}` default for `{item.key}`, got `{item.value}`", "default_value")
            return None
    if item.type == "number" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _graphs(spec: WorkflowSpec, nodes: dict[str, Node]) -> dict[str | None, Graph]:
    graphs: dict[str | None, Graph] = {}
    start = spec.start_node()
    assert start is not None  # the validator guarantees one
    graphs[None] = Graph(start.id, None)
    for node in nodes.values():
        if node.is_container:
            graphs[node.id] = Graph(node.start_id, node.id)  # type: ignore[attr-defined]
    for position, node in enumerate(nodes.values()):
        graph = graphs[node.parent]
        graph.nodes[node.id] = node
        graph.order[node.id] = position
        if node.is_response:
            graph.response_nodes.append(node.id)
    for edge in spec.edges:
        graph = graphs[spec.nodes[edge.source].parent]
        graph.out_edges[edge.source].append(Edge(edge.id, edge.source, edge.target, edge.source_handle))
        graph.in_count[edge.target] += 1
    return graphs


_ZERO: dict[str, Any] = {"string": "", "number": 0, "integer": 0, "boolean": False, "object": {}, "secret": ""}


def _default_of(value_type: str, value: Any) -> Any:
    if value is not None and value != "":
        return value
    if value_type.startswith("array"):
        return []
    return _ZERO.get(value_type, value)
