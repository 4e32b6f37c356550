"""Node families without external services: start, end, answer, template, if-else, aggregator,
assigner, iteration and loop."""

from __future__ import annotations

from typing import Any

import pytest

from tidegate.engine import Conversation, RunLimits, WorkflowRunner, compile_workflow
from tidegate.errors import RequestError

pytestmark = pytest.mark.usefixtures("no_leaks")


def run(data: dict[str, Any], **kwargs: Any) -> Any:
    return WorkflowRunner(compile_workflow(data), limits=RunLimits(timeout=20)).run_blocking(**kwargs)


def typed_start(kit: Any, **types: str) -> dict[str, Any]:
    return kit.node("start", "start", "Start",
                    variables=[{"variable": k, "label": k.title(), "type": t} for k, t in types.items()])


async def test_start_checks_inputs_like_dify(kit: Any) -> None:
    start = kit.node("start", "start", "Start", variables=[
        {"variable": "name", "label": "Name", "type": "text-input", "required": True, "max_length": 5},
        {"variable": "n", "label": "N", "type": "number"},
        {"variable": "color", "label": "Color", "type": "select", "options": ["red", "blue"], "default": "red"},
        {"variable": "ok", "label": "OK", "type": "checkbox"},
        {"variable": "obj", "label": "Obj", "type": "json_object"},
    ])
    data = kit.dsl([start, kit.end(name=["start", "name"], n=["start", "n"], color=["start", "color"],
                                   ok=["start", "ok"], obj=["start", "obj"])], kit.chain("start", "end"))
    runner = WorkflowRunner(compile_workflow(data))
    result = await runner.run_blocking({"name": "Ada", "n": "42", "ok": True, "obj": '{"a": 1}', "extra": "ignored"})
    assert result.outputs == {"name": "Ada", "n": 42, "color": "red", "ok": True, "obj": {"a": 1}}
    problems = [
        ({}, "Name is required in input form"),
        ({"name": "toolong"}, "Name in input form must be less than 5 characters"),
        ({"name": "a", "n": "x"}, "N in input form must be a valid number"),
        ({"name": "a", "color": "green"}, "Color in input form must be one of the following: red, blue"),
        ({"name": "a", "obj": "[1]"}, "Obj in input form must be a JSON object"),
        ({"name": 5}, "Name in input form must be a string"),
    ]
    for inputs, message in problems:
        with pytest.raises(RequestError) as info:
            runner.start(inputs)
        assert info.value.message == message
        assert info.value.code == "invalid_param" and info.value.status == 400


async def test_answer_streams_in_path_order(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.start("q"),
            kit.tpl("t1", "one {{ q }}", q=["start", "q"]),
            kit.node("a1", "answer", "A1", answer="[{{#t1.output#}}]"),
            kit.tpl("t2", "two", q=["start", "q"]),
            kit.node("a2", "answer", "A2", answer=" then {{#t2.output#}} for {{#sys.user_id#}}"),
        ],
        kit.chain("start", "t1", "a1", "t2", "a2"),
        mode="advanced-chat",
    )
    runner = WorkflowRunner(compile_workflow(data))
    events = await kit.collect(runner.run({"q": "x"}, user="u1", query="hello"))
    chunks = [(e.text, e.from_variable_selector) for e in events if e.kind == "text_chunk"]
    assert chunks == [
        ("[", ["a1", "answer"]), ("one x", ["t1", "output"]), ("]", ["a1", "answer"]),
        (" then ", ["a2", "answer"]), ("two", ["t2", "output"]), (" for ", ["a2", "answer"]), ("u1", ["sys", "user_id"]),
    ]
    finished = events[-1]
    assert finished.outputs == {"answer": "[one x] then two for u1"}
    # Each chunk is emitted as soon as its value exists: t1's text precedes t2's node start.
    order = [(e.kind, getattr(e, "node_id", None)) for e in events]
    assert order.index(("text_chunk", None)) < order.index(("node_started", "t2"))


async def test_answers_on_untaken_branches_say_nothing(kit: Any) -> None:
    cases = [{"case_id": "yes", "logical_operator": "and",
              "conditions": [{"variable_selector": ["start", "q"], "comparison_operator": "is", "value": "y"}]}]
    data = kit.dsl(
        [
            kit.start("q"),
            kit.node("if", "if-else", "If", cases=cases),
            kit.node("ay", "answer", "Yes", answer="YES"),
            kit.node("an", "answer", "No", answer="NO"),
        ],
        [kit.edge("start", "if"), kit.edge("if", "ay", "yes"), kit.edge("if", "an", "false")],
        mode="advanced-chat",
    )
    runner = WorkflowRunner(compile_workflow(data))
    assert (await runner.run_blocking({"q": "y"})).answer == "YES"
    assert (await runner.run_blocking({"q": "n"})).answer == "NO"


async def test_legacy_if_else_form(kit: Any) -> None:
    legacy = kit.node("if", "if-else", "If", logical_operator="or", conditions=[
        {"id": "c1", "variable_selector": ["start", "n"], "comparison_operator": "<", "value": "0"},
        {"id": "c2", "variable_selector": ["start", "n"], "comparison_operator": ">", "value": "100"},
    ])
    data = kit.dsl(
        [typed_start(kit, n="number"), legacy, kit.tpl("out", "outside"), kit.tpl("in", "inside"),
         kit.node("agg", "variable-assigner", "Agg", output_type="string", variables=[["out", "output"], ["in", "output"]]),
         kit.end(r=["agg", "output"], sel=["if", "selected_case_id"])],
        [kit.edge("start", "if"), kit.edge("if", "out", "true"), kit.edge("if", "in", "false"),
         kit.edge("out", "agg"), kit.edge("in", "agg"), kit.edge("agg", "end")],
        version="0.1.2",
    )
    assert (await run(data, inputs={"n": 500})).outputs == {"r": "outside", "sel": "true"}
    assert (await run(data, inputs={"n": 50})).outputs == {"r": "inside", "sel": "false"}


async def test_if_else_cases_pick_the_first_match(kit: Any) -> None:
    def case(case_id: str, op: str, value: str) -> dict[str, Any]:
        return {"case_id": case_id, "logical_operator": "and",
                "conditions": [{"variable_selector": ["start", "s"], "comparison_operator": op, "value": value}]}

    data = kit.dsl(
        [kit.start("s"), kit.node("if", "if-else", "If", cases=[case("c1", "start with", "a"), case("c2", "contains", "b")]),
         kit.end("e1", v=["if", "selected_case_id"]), kit.end("e2", v=["if", "selected_case_id"]),
         kit.end("e3", v=["if", "selected_case_id"])],
        [kit.edge("start", "if"), kit.edge("if", "e1", "c1"), kit.edge("if", "e2", "c2"), kit.edge("if", "e3", "false")],
    )
    assert (await run(data, inputs={"s": "abc"})).outputs == {"v": "c1"}
    assert (await run(data, inputs={"s": "xbx"})).outputs == {"v": "c2"}
    assert (await run(data, inputs={"s": "zzz"})).outputs == {"v": "false"}


async def test_aggregator_groups(kit: Any) -> None:
    groups = {"group_enabled": True, "groups": [
        {"group_name": "text", "output_type": "string", "variables": [["t1", "output"], ["start", "a"]]},
        {"group_name": "other", "output_type": "string", "variables": [["start", "b"]]},
    ]}
    data = kit.dsl(
        [kit.start("a", "b"), kit.tpl("t1", "from t1"),
         kit.node("agg", "variable-aggregator", "Agg", output_type="string", variables=[], advanced_settings=groups),
         kit.end(t=["agg", "text", "output"], o=["agg", "other", "output"])],
        kit.chain("start", "t1", "agg", "end"),
    )
    assert (await run(data, inputs={"a": "A", "b": "B"})).outputs == {"t": "from t1", "o": "B"}


def chat_with_vars(kit: Any, assigner: dict[str, Any], conv: list[dict[str, Any]]) -> dict[str, Any]:
    return kit.dsl(
        [kit.start("x"), assigner, kit.node("ans", "answer", "A", answer="{{#conversation.items#}}|{{#conversation.n#}}")],
        kit.chain("start", "assign", "ans"),
        mode="advanced-chat",
        conversation_variables=conv,
    )


CONV = [
    {"id": "1", "name": "items", "value_type": "array[string]", "value": [], "description": ""},
    {"id": "2", "name": "n", "value_type": "number", "value": 10, "description": ""},
    {"id": "3", "name": "note", "value_type": "string", "value": "hi", "description": ""},
]


async def test_assigner_v2_operations_persist_in_the_conversation(kit: Any) -> None:
    items = [
        {"variable_selector": ["conversation", "items"], "input_type": "variable", "operation": "append", "value": ["start", "x"]},
        {"variable_selector": ["conversation", "n"], "input_type": "constant", "operation": "+=", "value": 5},
        {"variable_selector": ["conversation", "n"], "input_type": "constant", "operation": "*=", "value": 2},
        {"variable_selector": ["conversation", "note"], "input_type": "constant", "operation": "clear", "value": None},
    ]
    data = chat_with_vars(kit, kit.node("assign", "assigner", "Assign", version="2", items=items), CONV)
    runner = WorkflowRunner(compile_workflow(data))
    conversation = Conversation()
    first = await runner.run_blocking({"x": "a"}, conversation=conversation)
    assert first.answer == '["a"]|30'
    second = await runner.run_blocking({"x": "b"}, conversation=conversation)
    assert second.answer == '["a", "b"]|70'
    assert conversation.variables == {"items": ["a", "b"], "n": 70, "note": ""}


async def test_assigner_v1_and_its_errors(kit: Any) -> None:
    v1 = kit.node("assign", "assigner", "Assign", assigned_variable_selector=["conversation", "items"],
                  write_mode="over-write", input_variable_selector=["start", "x"])
    data = chat_with_vars(kit, v1, CONV)
    conversation = Conversation()
    result = await WorkflowRunner(compile_workflow(data)).run_blocking({"x": "solo"}, conversation=conversation)
    assert result.answer == "solo|10"
    bad = kit.node("assign", "assigner", "Assign", version="2", items=[
        {"variable_selector": ["conversation", "n"], "input_type": "constant", "operation": "/=", "value": 0}])
    failed = await WorkflowRunner(compile_workflow(chat_with_vars(kit, bad, CONV))).run_blocking({"x": "x"})
    assert failed.status == "failed"
    assert failed.error == "node `assign` (Assign) failed: cannot /= conversation.n: division by zero"


def iteration_dsl(kit: Any, *, parallel: bool = False, mode: str = "terminated", flatten: bool = True,
                  body_code: str | None = None) -> dict[str, Any]:
    body = kit.tpl("body", "<{{ item }}>", item=["it", "item"]) | {"parentId": "it"}
    if body_code is not None:
        body = kit.node("body", "template-transform", "Body", parent="it", template=body_code,
                        variables=[{"variable": "item", "value_selector": ["it", "item"]},
                                   {"variable": "i", "value_selector": ["it", "index"]}])
    return kit.dsl(
        [
            kit.node("start", "start", "Start", variables=[{"variable": "xs", "type": "json_object"}]),
            kit.node("it", "iteration", "Each", iterator_selector=["start", "xs", "list"], output_selector=["body", "output"],
                     is_parallel=parallel, parallel_nums=3, error_handle_mode=mode, flatten_output=flatten,
                     start_node_id="itstart"),
            kit.node("itstart", "iteration-start", "", parent="it"),
            body,
            kit.end(out=["it", "output"]),
        ],
        [kit.edge("start", "it"), kit.edge("itstart", "body"), kit.edge("it", "end")],
    )


@pytest.mark.parametrize("parallel", [False, True])
async def test_iteration_collects_outputs_in_item_order(kit: Any, parallel: bool) -> None:
    data = iteration_dsl(kit, parallel=parallel)
    runner = WorkflowRunner(compile_workflow(data))
    events = await kit.collect(runner.run({"xs": {"list": ["a", "b", "c", "d", "e"]}}))
    assert events[-1].outputs == {"out": ["<a>", "<b>", "<c>", "<d>", "<e>"]}
    kinds = [e.kind for e in events]
    assert kinds.count("iteration_started") == 1 and kinds.count("iteration_next") == 5
    assert kinds.count("iteration_completed") == 1
    inner = [e for e in events if e.kind == "node_started" and e.node_id == "body"]
    assert len(inner) == 5 and all(e.iteration_id == "it" for e in inner)
    completed = next(e for e in events if e.kind == "iteration_completed")
    assert completed.status == "succeeded" and completed.steps == 5


async def test_iteration_flatten_and_error_modes(kit: Any) -> None:
    listy = "{{ [item, item] | tojson }}"
    data = iteration_dsl(kit, body_code=listy)
    # template output is a string, so nothing to flatten
    assert (await run(data, inputs={"xs": {"list": [1]}})).outputs == {"out": ["[1, 1]"]}
    failing = "{{ item.missing.deeper }}"  # fails on items that are not objects
    for mode, expected in (("continue-on-error", [None, "", None]), ("remove-abnormal-output", [""])):
        result = await run(iteration_dsl(kit, body_code=failing, mode=mode), inputs={"xs": {"list": [1, {"missing": {}}, 3]}})
        assert result.status == "succeeded", result.error
        assert result.outputs == {"out": expected}
    result = await run(iteration_dsl(kit, body_code=failing, parallel=True), inputs={"xs": {"list": [{"missing": {}}, 2, 3]}})
    assert result.status == "failed"
    assert result.error.startswith("node `it` (Each) failed: item 1 failed: node `body` (Body) failed: template error:")


async def test_iteration_flattens_list_outputs(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.node("start", "start", "Start", variables=[{"variable": "xs", "type": "json_object"}]),
            kit.node("it", "iteration", "Each", iterator_selector=["start", "xs", "rows"], output_selector=["agg", "output"],
                     flatten_output=True),
            kit.node("itstart", "iteration-start", "", parent="it"),
            kit.node("agg", "variable-aggregator", "Agg", parent="it", output_type="array[string]",
                     variables=[["it", "item"]]),
            kit.end(out=["it", "output"]),
        ],
        [kit.edge("start", "it"), kit.edge("itstart", "agg"), kit.edge("it", "end")],
    )
    assert (await run(data, inputs={"xs": {"rows": [["a", "b"], ["c"]]}})).outputs == {"out": ["a", "b", "c"]}


def loop_dsl(kit: Any, *, count: int, limit: str, with_end: bool = False) -> dict[str, Any]:
    nodes = [
        kit.start(),
        kit.node("lp", "loop", "Loop", loop_count=count, logical_operator="and",
                 break_conditions=[{"variable_selector": ["lp", "n"], "comparison_operator": "≥", "value": limit}],
                 loop_variables=[{"label": "n", "var_type": "number", "value_type": "constant", "value": "0"},
                                 {"label": "log", "var_type": "array[string]", "value_type": "constant", "value": "[]"}]),
        kit.node("lpstart", "loop-start", "", parent="lp"),
        kit.node("inc", "assigner", "Inc", parent="lp", version="2", items=[
            {"variable_selector": ["lp", "n"], "input_type": "constant", "operation": "+=", "value": 1},
            {"variable_selector": ["lp", "log"], "input_type": "variable", "operation": "append", "value": ["lp", "index"]},
        ]),
        kit.end(n=["lp", "n"], log=["lp", "log"], rounds=["lp", "loop_round"]),
    ]
    edges = [kit.edge("start", "lp"), kit.edge("lpstart", "inc"), kit.edge("lp", "end")]
    if with_end:
        nodes.append(kit.node("stop", "loop-end", "Stop", parent="lp"))
        edges.append(kit.edge("inc", "stop"))
    return kit.dsl(nodes, edges)


async def test_loop_variables_and_break_conditions(kit: Any) -> None:
    result = await run(loop_dsl(kit, count=10, limit="3"), inputs={})
    assert result.outputs == {"n": 3, "log": [0, 1, 2], "rounds": 3}
    capped = await run(loop_dsl(kit, count=2, limit="99"), inputs={})
    assert capped.outputs == {"n": 2, "log": [0, 1], "rounds": 2}
    at_once = await run(loop_dsl(kit, count=5, limit="0"), inputs={})
    assert at_once.outputs == {"n": 0, "log": [], "rounds": 0}


async def test_loop_end_node_breaks(kit: Any) -> None:
    events = await kit.collect(WorkflowRunner(compile_workflow(loop_dsl(kit, count=10, limit="99", with_end=True))).run({}))
    assert events[-1].outputs == {"n": 1, "log": [0], "rounds": 1}
    completed = next(e for e in events if e.kind == "loop_completed")
    assert completed.execution_metadata["completed_reason"] == "loop_break"
    assert [e.kind for e in events].count("loop_next") == 1
