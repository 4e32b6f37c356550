"""Load-time errors: node data, capabilities and templates, all in one ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tidegate.engine import NodeRegistry, compile_workflow, default_registry, load_workflow
from tidegate.engine.nodes.base import Node, NodeContext, NodeResult
from tidegate.errors import ConfigError


def issues_of(data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        compile_workflow(data, source="wf.yml", **kwargs)
    return info.value.issues


def test_structural_and_data_problems_are_reported_together(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.start("x"),
            kit.node("kr", "knowledge-retrieval", "Search", query_variable_selector=["sys", "query"], dataset_ids=["d1"]),
            kit.node("tool", "tool", "Weather"),
            kit.node("agent", "agent", "Agent"),
            kit.tpl("bad", "{{ oops "),
            kit.node("code", "code", "Py", code_language="python3", code="def main(:\n", outputs={}, variables=[]),
            kit.node("if", "if-else", "If", cases=[{"case_id": "c", "conditions": [
                {"variable_selector": ["start", "x"], "comparison_operator": "~", "value": ""}]}]),
            kit.node("llm", "llm", "LLM", model={"provider": "p", "name": "m", "mode": "chat"}, prompt_template=7,
                     context={"enabled": False}),
            kit.end(),
        ],
        [kit.edge("start", n) for n in ("kr", "tool", "agent", "bad", "code", "if", "llm")]
        + [kit.edge("if", "end", "c"), kit.edge("ghost", "end")],
    )
    assert issues_of(data) == [
        "Expected an edge source that is a node id, got `ghost` - at `$.workflow.graph.edges[8].source` (wf.yml)",
        "Expected a node type this tidegate can run, got `knowledge-retrieval`, which needs knowledge bases"
        " (the `knowledge:` section and a knowledge-retrieval node); that capability is not available yet"
        " - at `$.workflow.graph.nodes[1].data.type` in node `kr` (Search) (wf.yml)",
        "Expected a node type this tidegate can run, got `tool`, which needs tools (the `tools:` section and a"
        " tool node); that capability is not available yet - at `$.workflow.graph.nodes[2].data.type` in node"
        " `tool` (Weather) (wf.yml)",
        "Expected a node type this tidegate can run, got `agent`, which needs agents (an agent node); that"
        " capability is not available yet - at `$.workflow.graph.nodes[3].data.type` in node `agent` (Agent) (wf.yml)",
        "Expected a valid Jinja2 template, got a syntax error at line 1: unexpected end of template, expected"
        " 'end of print statement'. - at `$.workflow.graph.nodes[4].data.template` in node `bad` (bad) (wf.yml)",
        "Expected valid Python 3 code, got a syntax error at line 1: invalid syntax"
        " - at `$.workflow.graph.nodes[5].data.code` in node `code` (Py) (wf.yml)",
        "Expected a comparison operator (contains, not contains, start with, end with, is, is not, =, ≠, >, <,"
        " ≥, ≤, in, not in, all of, empty, not empty, null, not null, exists, not exists), got `~`"
        " - at `$.workflow.graph.nodes[6].data.cases[0].conditions[0].comparison_operator` in node `if` (If) (wf.yml)",
        "Expected `object | array`, got `int` - at `$.workflow.graph.nodes[7].data.prompt_template`"
        " in node `llm` (LLM) (wf.yml)",
    ]


def test_javascript_needs_node(kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    data = kit.dsl([kit.start(), kit.node("js", "code", "JS", code_language="javascript",
                                          code="function main() { return {} }", outputs={}, variables=[]),
                    kit.end()], kit.chain("start", "js", "end"))
    assert issues_of(data) == [
        "Expected a `node` binary on PATH to run JavaScript code nodes, got none (install Node.js or rewrite the"
        " node in Python 3) - at `$.workflow.graph.nodes[1].data.code_language` in node `js` (JS) (wf.yml)"
    ]


def test_error_strategy_and_defaults(kit: Any) -> None:
    data = kit.dsl(
        [kit.start(), kit.tpl("t", "x") | {}, kit.end()],
        kit.chain("start", "t", "end"),
    )
    data["workflow"]["graph"]["nodes"][1]["data"].update(
        error_strategy="default-value", default_value=[{"key": "output", "type": "object", "value": "{broken"}])
    assert issues_of(data) == [
        "Expected a `object` default for `output`, got `{broken` - at `$.workflow.graph.nodes[1].data.default_value`"
        " in node `t` (t) (wf.yml)"
    ]
    data["workflow"]["graph"]["nodes"][1]["data"]["error_strategy"] = "ignore"
    assert issues_of(data) == [
        "Expected `fail-branch` or `default-value`, got `ignore` - at `$.workflow.graph.nodes[1].data.error_strategy`"
        " in node `t` (t) (wf.yml)"
    ]


async def test_extension_points_take_a_registered_family(kit: Any) -> None:
    class FakeRetrieval(Node):  # stands in for the knowledge capability another issue adds
        type = "knowledge-retrieval"

        async def run(self, ctx: NodeContext) -> NodeResult:
            return NodeResult({"result": [{"content": "doc"}]})

    registry = default_registry()
    registry.register(FakeRetrieval)
    assert "knowledge-retrieval" in registry and "knowledge-retrieval" not in NodeRegistry()
    data = kit.dsl(
        [kit.start(), kit.node("kr", "knowledge-retrieval", "KR"), kit.end(r=["kr", "result"])],
        kit.chain("start", "kr", "end"),
    )
    from tidegate.engine import WorkflowRunner

    workflow = compile_workflow(data, registry=registry)
    assert (await WorkflowRunner(workflow).run_blocking({})).outputs == {"r": [{"content": "doc"}]}


def test_load_workflow_from_file(kit: Any, tmp_path: Path) -> None:
    data = kit.dsl([kit.start(), kit.end()], kit.chain("start", "end"))
    path = tmp_path / "wf.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    workflow = load_workflow(path)
    assert workflow.source == str(path) and workflow.mode == "workflow"
    data["workflow"]["graph"]["nodes"].append(kit.node("lost", "end", "Lost"))
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_workflow(path)
    assert info.value.issues == [
        "Expected every node to be reachable from the start node, got an unreachable node"
        f" - at `$.workflow.graph.nodes[2]` in node `lost` (Lost) ({path})"
    ]
