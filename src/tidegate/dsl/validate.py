"""Graph checks on a normalised spec, collecting every problem instead of stopping at the first.

What is checked: known node types, containers and their start nodes, edges that point at real
nodes and stay inside one container, branch handles that exist, one start node, reachability,
cycles (only loop and iteration nodes may repeat work), and every ``{{#node.var#}}`` reference or
selector naming a node and variable that exist.
"""

from __future__ import annotations

from collections import defaultdict

from .catalog import CONTAINER_START, DIFY_NODE_TYPES, branch_handles, node_outputs
from .refs import SYSTEM_VARIABLES, Selector, iter_references, selector_text
from .spec import EdgeSpec, WorkflowSpec

__all__ = ["validate_spec"]


def validate_spec(spec: WorkflowSpec) -> list[str]:
    issues: list[str] = []
    _check_types(spec, issues)
    _check_parents(spec, issues)
    scoped = _check_edges(spec, issues)
    _check_start(spec, issues)
    roots = _check_containers(spec, issues)
    for scope, root in roots.items():
        _check_reachable(spec, scope, root, scoped[scope], issues)
        _check_cycles(spec, scope, scoped[scope], issues)
    _check_references(spec, issues)
    return issues


def _check_types(spec: WorkflowSpec, issues: list[str]) -> None:
    for node in spec.nodes.values():
        if node.type not in DIFY_NODE_TYPES:
            issues.append(
                f"Expected a Dify node type, got `{node.type}` - at `{node.path}.data.type` in {node.where()}"
            )


def _check_parents(spec: WorkflowSpec, issues: list[str]) -> None:
    for node in spec.nodes.values():
        if node.parent is None:
            continue
        parent = spec.nodes.get(node.parent)
        if parent is None or parent.type not in CONTAINER_START:
            issues.append(
                f"Expected the container of a node to be an iteration or loop node, got `{node.parent}`"
                f" - at `{node.path}.parentId` in {node.where()}"
            )
        elif node.type in ("start", "end"):
            issues.append(
                f"Expected no `{node.type}` node inside a {parent.type}, got one - at `{node.path}` in {node.where()}"
            )


def _check_edges(spec: WorkflowSpec, issues: list[str]) -> dict[str | None, list[EdgeSpec]]:
    """Report bad edges; returns the good ones grouped by the container they run in."""
    scoped: dict[str | None, list[EdgeSpec]] = defaultdict(list)
    for edge in spec.edges:
        source, target = spec.nodes.get(edge.source), spec.nodes.get(edge.target)
        bad = False
        for field, node, node_id in (("source", source, edge.source), ("target", target, edge.target)):
            if node is None:
                issues.append(f"Expected an edge {field} that is a node id, got `{node_id}` - at `{edge.path}.{field}`")
                bad = True
        if bad or source is None or target is None:
            continue
        if source.parent != target.parent:
            issues.append(
                f"Expected an edge inside one container, got `{source.id}` ({_scope_name(source.parent)})"
                f" → `{target.id}` ({_scope_name(target.parent)}) - at `{edge.path}`"
            )
            continue
        handles = branch_handles(source.type, source.data)
        if handles is not None and edge.source_handle not in handles:
            allowed = ", ".join(f"`{h}`" for h in sorted(handles))
            issues.append(
                f"Expected the edge's sourceHandle to be one of {allowed}, got `{edge.source_handle}`"
                f" - at `{edge.path}.sourceHandle` in {source.where()}"
            )
            continue
        scoped[source.parent].append(edge)
    return scoped


def _check_start(spec: WorkflowSpec, issues: list[str]) -> None:
    starts = [node.id for node in spec.nodes.values() if node.type == "start" and node.parent is None]
    if len(starts) != 1:
        got = "none" if not starts else f"{len(starts)} ({', '.join(f'`{s}`' for s in starts)})"
        issues.append(f"Expected one `start` node at the top level, got {got} - at `$.workflow.graph.nodes`")


def _check_containers(spec: WorkflowSpec, issues: list[str]) -> dict[str | None, str]:
    """Each scope's root node: the start node, and each container's start child."""
    roots: dict[str | None, str] = {}
    start = spec.start_node()
    if start is not None:
        roots[None] = start.id
    for node in spec.nodes.values():
        start_type = CONTAINER_START.get(node.type)
        if start_type is None:
            continue
        found = [c.id for c in spec.children(node.id) if c.type == start_type]
        if len(found) != 1:
            got = "none" if not found else f"{len(found)}"
            issues.append(
                f"Expected one `{start_type}` node inside the {node.type}, got {got} - at `{node.path}` in {node.where()}"
            )
            continue
        roots[node.id] = found[0]
    return roots


def _check_reachable(
    spec: WorkflowSpec, scope: str | None, root: str, edges: list[EdgeSpec], issues: list[str]
) -> None:
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge.target)
    seen = {root}
    stack = [root]
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    origin = "the start node" if scope is None else f"the start of {_scope_name(scope)}"
    for node in spec.children(scope):
        if node.id not in seen:
            issues.append(
                f"Expected every node to be reachable from {origin}, got an unreachable node"
                f" - at `{node.path}` in {node.where()}"
            )


def _check_cycles(spec: WorkflowSpec, scope: str | None, edges: list[EdgeSpec], issues: list[str]) -> None:
    successors: dict[str, list[EdgeSpec]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for node in spec.children(scope):
        if node.id in state:
            continue
        path: list[str] = []
        # Iterative DFS so a long chain cannot hit the recursion limit.
        stack: list[tuple[str, int]] = [(node.id, 0)]
        state[node.id] = 1
        path.append(node.id)
        while stack:
            current, position = stack[-1]
            out = successors[current]
            if position >= len(out):
                stack.pop()
                path.pop()
                state[current] = 2
                continue
            stack[-1] = (current, position + 1)
            edge = out[position]
            mark = state.get(edge.target)
            if mark == 1:
                cycle = [*path[path.index(edge.target):], edge.target]
                issues.append(
                    "Expected no cycles outside loop and iteration nodes, got "
                    + " → ".join(f"`{n}`" for n in cycle)
                    + f" - at `{edge.path}`"
                )
            elif mark is None:
                state[edge.target] = 1
                path.append(edge.target)
                stack.append((edge.target, 0))


def _check_references(spec: WorkflowSpec, issues: list[str]) -> None:
    chat = spec.mode == "advanced-chat"
    env = {var.name for var in spec.env}
    conversation = {var.name for var in spec.conversation}
    catalog: dict[str, frozenset[str] | None] = {
        node.id: node_outputs(node.type, node.data, chat=chat) for node in spec.nodes.values()
    }
    for node in spec.nodes.values():
        for selector, path in iter_references(node.data, f"{node.path}.data", node.type):
            problem = _reference_problem(selector, spec, catalog, env, conversation)
            if problem:
                issues.append(f"{problem}, got `{selector_text(selector)}` - at `{path}` in {node.where()}")


def _reference_problem(
    selector: Selector,
    spec: WorkflowSpec,
    catalog: dict[str, frozenset[str] | None],
    env: set[str],
    conversation: set[str],
) -> str | None:
    owner, name = selector[0], selector[1]
    if owner == "sys":
        return None if name in SYSTEM_VARIABLES else "Expected a system variable (" + _list(SYSTEM_VARIABLES) + ")"
    if owner == "env":
        return None if name in env else "Expected a declared environment variable (" + _list(env) + ")"
    if owner == "conversation":
        if name in conversation:
            return None
        return "Expected a declared conversation variable (" + _list(conversation) + ")"
    if owner not in spec.nodes:
        return "Expected a reference to an existing node"
    outputs = catalog[owner]
    if outputs is None or name in outputs:
        return None
    return f"Expected a variable of node `{owner}` (" + _list(outputs) + ")"


def _list(names: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(names)) if names else "none declared"


def _scope_name(scope: str | None) -> str:
    return "top level" if scope is None else f"container `{scope}`"

