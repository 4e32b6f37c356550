from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.dsl import load_dsl, parse_dsl, parse_template
from tidegate.errors import ConfigError


def problems(data: Any, source: str | None = "wf.yml") -> list[str]:
    _spec, issues = parse_dsl(data, source=source)
    return issues


def test_simple_workflow_loads(simple: dict[str, Any]) -> None:
    spec, issues = parse_dsl(simple, source="wf.yml")
    assert issues == []
    assert spec is not None
    assert spec.mode == "workflow"
    assert list(spec.nodes) == ["start", "tpl", "end"]
    assert [(e.source, e.target, e.source_handle) for e in spec.edges] == [
        ("start", "tpl", "source"),
        ("tpl", "end", "source"),
    ]


def test_load_from_file_and_bad_yaml(tmp_path: Path, simple: dict[str, Any]) -> None:
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(simple, allow_unicode=True), encoding="utf-8")
    assert load_dsl(good).source == str(good)
    bad = tmp_path / "bad.yml"
    bad.write_text("app: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_dsl(bad)
    assert info.value.issues[0].startswith("Invalid YAML at line 2, column 1:")
    assert info.value.issues[0].endswith(f"({bad})")
    with pytest.raises(ConfigError, match="Cannot read DSL file"):
        load_dsl(tmp_path / "missing.yml")


def test_ui_keys_and_notes_are_tolerated(simple: dict[str, Any]) -> None:
    simple["workflow"]["graph"]["nodes"].append(
        {"id": "note1", "type": "custom-note", "data": {"type": "", "text": "remember", "theme": "blue"}}
    )
    simple["workflow"]["graph"]["edges"].append({"source": "note1", "target": "end"})
    simple["workflow"]["graph"]["nodes"][0]["data"]["someFutureUiKey"] = {"a": 1}
    spec, issues = parse_dsl(simple)
    assert issues == [] and spec is not None
    assert "note1" not in spec.nodes


def test_numeric_ids_and_success_branch_alias(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("1711", "start", "Start"),
            kit.node("1712", "end", "End", outputs=[]),
        ],
        [kit.edge("1711", "1712", "success-branch")],
    )
    data["workflow"]["graph"]["nodes"][0]["id"] = 1711
    data["workflow"]["graph"]["edges"][0]["source"] = 1711
    spec, issues = parse_dsl(data)
    assert issues == [] and spec is not None
    assert spec.edges[0].source == "1711" and spec.edges[0].source_handle == "source"


@pytest.mark.parametrize(
    ("version", "ok"),
    [("0.1.0", True), ("0.1.5", True), ("0.3.1", True), ("0.6.0", True), ("0.6.1", False), ("1.0.0", False), ("0.0.9", False)],
)
def test_versions(simple: dict[str, Any], version: str, ok: bool) -> None:
    simple["version"] = version
    issues = problems(simple)
    if ok:
        assert issues == []
    else:
        assert issues == [f"Expected a Dify DSL version from 0.1.0 to 0.6.0, got `{version}` - at `$.version` (wf.yml)"]


def test_missing_version_means_oldest(simple: dict[str, Any]) -> None:
    del simple["version"]
    spec, issues = parse_dsl(simple)
    assert issues == [] and spec is not None and spec.version == "0.1.0"


@pytest.mark.parametrize("mode", ["chat", "agent-chat", "completion"])
def test_other_modes_are_refused_clearly(simple: dict[str, Any], mode: str) -> None:
    simple["app"]["mode"] = mode
    assert problems(simple) == [
        f"Expected app mode `workflow` or `advanced-chat`, got `{mode}` (a `{mode}` app has no workflow"
        " graph; tidegate runs workflow and chatflow apps) - at `$.app.mode` (wf.yml)"
    ]


def test_not_a_document() -> None:
    assert problems([1, 2]) == [
        "Expected a Dify DSL document (a mapping with `app` and `workflow`), got `array` - at `$` (wf.yml)"
    ]


def test_every_problem_is_collected_in_one_error(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("start", "start", "Start"),
            kit.node("weird", "quantum-node", "Quantum"),
            kit.node("bad-id", "end", "Dash"),
            kit.node("llm1", "llm", "Ask", prompt_template=[{"role": "user", "text": "{{#ghost.text#}} {{#start.nope#}}"}]),
            kit.node("lonely", "template-transform", "Lonely", template="x", variables=[]),
            kit.node("a", "template-transform", "A", template="", variables=[{"variable": "v", "value_selector": ["sys", "bogus"]}]),
            kit.node("b", "template-transform", "B", template="", variables=[{"variable": "v", "value_selector": ["env", "KEY"]}]),
        ],
        [
            kit.edge("start", "weird"),
            kit.edge("start", "llm1"),
            kit.edge("llm1", "a"),
            kit.edge("a", "b"),
            kit.edge("b", "a"),
            kit.edge("b", "nowhere"),
        ],
    )
    with pytest.raises(ConfigError) as info:
        _spec, issues = parse_dsl(data, source="wf.yml")
        raise ConfigError(issues, source="wf.yml")
    issues = info.value.issues
    assert issues == [
        "Expected a node id of 1-50 letters, digits or `_`, got `bad-id` - at `$.workflow.graph.nodes[2].id` in node (Dash) (wf.yml)",
    ]
    # Structural problems come after the file-level ones are fixed: fix the id and look again.
    data["workflow"]["graph"]["nodes"][2]["id"] = "dash"
    issues = problems(data)
    assert issues == [
        "Expected a Dify node type, got `quantum-node` - at `$.workflow.graph.nodes[1].data.type` in node `weird` (Quantum) (wf.yml)",
        "Expected an edge target that is a node id, got `nowhere` - at `$.workflow.graph.edges[5].target` (wf.yml)",
        "Expected every node to be reachable from the start node, got an unreachable node - at `$.workflow.graph.nodes[2]` in node `dash` (Dash) (wf.yml)",
        "Expected every node to be reachable from the start node, got an unreachable node - at `$.workflow.graph.nodes[4]` in node `lonely` (Lonely) (wf.yml)",
        "Expected no cycles outside loop and iteration nodes, got `a` → `b` → `a` - at `$.workflow.graph.edges[4]` (wf.yml)",
        "Expected a reference to an existing node, got `{{#ghost.text#}}` - at `$.workflow.graph.nodes[3].data.prompt_template[0].text` in node `llm1` (Ask) (wf.yml)",
        "Expected a variable of node `start` (none declared), got `{{#start.nope#}}` - at `$.workflow.graph.nodes[3].data.prompt_template[0].text` in node `llm1` (Ask) (wf.yml)",
        "Expected a system variable (app_id, conversation_id, dialogue_count, files, query, user_id, workflow_id, workflow_run_id), got `{{#sys.bogus#}}` - at `$.workflow.graph.nodes[5].data.variables[0].value_selector` in node `a` (A) (wf.yml)",
        "Expected a declared environment variable (none declared), got `{{#env.KEY#}}` - at `$.workflow.graph.nodes[6].data.variables[0].value_selector` in node `b` (B) (wf.yml)",
    ]
    err = ConfigError(issues, source="wf.yml")
    assert str(err).startswith("9 problems in wf.yml:\n  - Expected a Dify node type")


def test_start_node_rules(kit: Any) -> None:
    none = kit.dsl([kit.node("end", "end", "End", outputs=[])], [])
    assert "Expected one `start` node at the top level, got none - at `$.workflow.graph.nodes` (wf.yml)" in problems(none)
    two = kit.dsl([kit.node("s1", "start"), kit.node("s2", "start")], [])
    assert "Expected one `start` node at the top level, got 2 (`s1`, `s2`) - at `$.workflow.graph.nodes` (wf.yml)" in problems(two)


def test_duplicate_ids(kit: Any) -> None:
    data = kit.dsl([kit.node("s", "start", "Start"), kit.node("s", "end", "End", outputs=[])], [])
    assert problems(data) == [
        "Expected unique node ids, got `s` twice - at `$.workflow.graph.nodes[1].id` in node `s` (End) (wf.yml)"
    ]


def test_branch_handles_are_checked(kit: Any) -> None:
    cases = [{"case_id": "c1", "logical_operator": "and", "conditions": []}]
    data = kit.dsl(
        [
            kit.node("s", "start", "Start"),
            kit.node("if1", "if-else", "If", cases=cases),
            kit.node("e", "end", "End", outputs=[]),
        ],
        [kit.edge("s", "if1"), kit.edge("if1", "e", "maybe"), kit.edge("if1", "e", "c1")],
    )
    assert problems(data) == [
        "Expected the edge's sourceHandle to be one of `c1`, `false`, got `maybe` - at `$.workflow.graph.edges[1].sourceHandle` in node `if1` (If) (wf.yml)"
    ]


def test_edges_may_not_cross_containers(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("s", "start", "Start", variables=[{"variable": "xs", "type": "json_object"}]),
            kit.node("it", "iteration", "Each", iterator_selector=["s", "xs"], output_selector=["t", "output"], start_node_id="itstart"),
            kit.node("itstart", "iteration-start", "", parent="it"),
            kit.node("t", "template-transform", "T", parent="it", template="", variables=[]),
            kit.node("e", "end", "End", outputs=[{"variable": "o", "value_selector": ["it", "output"]}]),
        ],
        [kit.edge("s", "it"), kit.edge("itstart", "t"), kit.edge("it", "e"), kit.edge("t", "e")],
    )
    assert problems(data) == [
        "Expected an edge inside one container, got `t` (container `it`) → `e` (top level) - at `$.workflow.graph.edges[3]` (wf.yml)"
    ]


def test_old_iteration_without_start_node_gets_one(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("s", "start", "Start"),
            kit.node("it", "iteration", "Each", iterator_selector=["s", "xs"], output_selector=["t", "output"], start_node_id="t"),
            kit.node("t", "template-transform", "T", template="", variables=[], isInIteration=True, iteration_id="it"),
            kit.node("e", "end", "End", outputs=[]),
        ],
        [kit.edge("s", "it"), kit.edge("it", "e")],
        version="0.1.2",
    )
    data["workflow"]["graph"]["nodes"][0]["data"]["variables"] = [{"variable": "xs", "type": "json_object"}]
    spec, issues = parse_dsl(data)
    assert issues == [] and spec is not None
    assert spec.nodes["itstart"].type == "iteration-start"
    assert spec.nodes["itstart"].parent == "it"
    assert spec.nodes["it"].data["start_node_id"] == "itstart"
    assert any(e.source == "itstart" and e.target == "t" for e in spec.edges)


def test_container_without_start(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("s", "start", "Start"),
            kit.node("lp", "loop", "Loop", loop_count=3, break_conditions=[], logical_operator="and"),
            kit.node("e", "end", "End", outputs=[]),
        ],
        [kit.edge("s", "lp"), kit.edge("lp", "e")],
    )
    assert problems(data) == [
        "Expected one `loop-start` node inside the loop, got none - at `$.workflow.graph.nodes[1]` in node `lp` (Loop) (wf.yml)"
    ]


def test_env_and_conversation_references(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("s", "start", "Start"),
            kit.node("a", "answer", "Answer", answer="{{#env.KEY#}} {{#conversation.name#}} {{#sys.query#}}"),
        ],
        [kit.edge("s", "a")],
        mode="advanced-chat",
        environment_variables=[{"name": "KEY", "value": "v", "value_type": "string", "id": "x"}],
        conversation_variables=[{"name": "name", "value": "", "value_type": "string", "id": "y"}],
    )
    spec, issues = parse_dsl(data)
    assert issues == [] and spec is not None
    assert [v.name for v in spec.env] == ["KEY"]
    assert [v.name for v in spec.conversation] == ["name"]


def test_env_overrides_from_config(kit: Any) -> None:
    data = kit.dsl(
        [kit.node("s", "start", "Start")],
        [],
        environment_variables=[
            {"name": "N", "value": 1, "value_type": "number"},
            {"name": "SECRET", "value": "", "value_type": "secret"},
        ],
    )
    spec, issues = parse_dsl(data, env={"N": "2.5", "SECRET": "hunter2", "EXTRA": "e"})
    assert issues == [] and spec is not None
    assert {v.name: v.value for v in spec.env} == {"N": 2.5, "SECRET": "hunter2", "EXTRA": "e"}
    spec, issues = parse_dsl(data, env={"N": "many"}, source=None)
    assert issues == ["Expected a number for environment variable `N`, got `many` - at `$.env.N`"]


def test_aggregator_group_outputs_are_referencable(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("s", "start", "Start", variables=[{"variable": "x", "type": "text-input"}]),
            kit.node("agg", "variable-aggregator", "Agg", output_type="string", variables=[],
                     advanced_settings={"group_enabled": True, "groups": [
                         {"group_name": "G1", "output_type": "string", "variables": [["s", "x"], ["s", "y"]]}]}),
            kit.node("e", "end", "End", outputs=[{"variable": "o", "value_selector": ["agg", "G1", "output"]}]),
        ],
        [kit.edge("s", "agg"), kit.edge("agg", "e")],
    )
    assert problems(data) == [
        "Expected a variable of node `s` (x), got `{{#s.y#}}` - at `$.workflow.graph.nodes[1].data.advanced_settings.groups[0].variables[1]` in node `agg` (Agg) (wf.yml)"
    ]


def test_parse_template_segments() -> None:
    assert parse_template("Hi {{#start.name#}}, {{#llm.usage.total_tokens#}}!") == (
        "Hi ",
        ("start", "name"),
        ", ",
        ("llm", "usage", "total_tokens"),
        "!",
    )
    assert parse_template("{{#context#}} {{# bad #}}") == ("{{#context#}} {{# bad #}}",)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab{}#._ 1")), max_size=40))
def test_parse_template_round_trips(text: str) -> None:
    rebuilt = "".join(s if isinstance(s, str) else "{{#" + ".".join(s) + "#}}" for s in parse_template(text))
    assert rebuilt == text


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_garbage_never_crashes_the_loader(data: st.DataObject) -> None:
    base = {
        "app": {"mode": "workflow"},
        "version": "0.6.0",
        "workflow": {"graph": {"nodes": [{"id": "s", "data": {"type": "start"}}], "edges": []}},
    }
    junk = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=8,
    )
    doc = copy.deepcopy(base)
    where = data.draw(st.sampled_from(["app", "workflow", "graph", "nodes", "edges", "node", "version"]))
    value = data.draw(junk)
    if where in ("app", "workflow", "version"):
        doc[where] = value
    elif where == "graph":
        doc["workflow"]["graph"] = value
    elif where == "node":
        doc["workflow"]["graph"]["nodes"].append(value)
    else:
        doc["workflow"]["graph"][where] = value
    spec, issues = parse_dsl(doc)
    assert spec is not None or issues
    assert all((isinstance(issue, str) and " - at `$" in issue) or issue.startswith("Expected") for issue in issues)
