"""The workflow `agent` node and workflow tools, on the real engine, Gateway and simulator."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tidegate.agent import AgentRuntime
from tidegate.agent.node import register_agent_node
from tidegate.agent.workflow_tool import WorkflowTool, current_depth, inputs_schema
from tidegate.config.agents import AgentConfig
from tidegate.engine import (
    RunLimits,
    Services,
    WorkflowRunner,
    compile_workflow,
    default_registry,
    dify_event,
)
from tidegate.errors import ConfigError


def node(node_id: str, node_type: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "custom", "position": {"x": 0, "y": 0},
            "data": {"type": node_type, "title": node_id, "desc": "", **data}}  # fmt: skip


def chain(*ids: str) -> list[dict[str, Any]]:
    return [{"id": f"{a}-{b}", "source": a, "sourceHandle": "source", "target": b, "targetHandle": "target",
             "type": "custom", "data": {}} for a, b in itertools.pairwise(ids)]  # fmt: skip


def dsl(nodes: list[dict[str, Any]], ids: list[str], mode: str = "workflow") -> dict[str, Any]:
    return {"app": {"name": "t", "mode": mode}, "kind": "app", "version": "0.6.0",
            "workflow": {"graph": {"nodes": nodes, "edges": chain(*ids)}, "features": {},
                         "environment_variables": [], "conversation_variables": []}}  # fmt: skip


def agent_node(query: str = "{{#start.q#}}", tools: tuple[str, ...] = ("order_status", "weather"), **extra: Any) -> dict[str, Any]:
    params = {
        "model": {"type": "constant", "value": {"provider": "langgenius/openai/openai", "model": "light",
                                                "mode": "chat", "model_type": "llm", "completion_params": {"temperature": 0.2}}},
        "tools": {"type": "constant", "value": [
            {"enabled": True, "provider_name": "tidegate", "tool_name": name, "parameters": {}, "settings": {}}
            for name in tools]},
        "instruction": {"type": "constant", "value": "Help user {{#sys.user_id#}}."},
        "query": {"type": "mixed", "value": query},
        "maximum_iterations": {"type": "constant", "value": 3},
        **extra.pop("params", {}),
    }  # fmt: skip
    return node("agent", "agent", agent_strategy_provider_name="langgenius/agent/agent",
                agent_strategy_name=extra.pop("strategy", "function_calling"), agent_parameters=params, **extra)


START = node("start", "start", variables=[{"variable": "q", "label": "q", "type": "paragraph", "required": True}])


def compile_with(runtime: AgentRuntime, data: dict[str, Any]) -> Any:
    registry = default_registry()
    register_agent_node(registry, runtime)
    return compile_workflow(data, registry=registry)


async def test_agent_node_streams_its_answer_and_logs_steps(make_runtime: Any) -> None:
    data = dsl([START, agent_node(), node("ans", "answer", answer="{{#agent.text#}}")], ["start", "agent", "ans"],
               mode="advanced-chat")
    async with make_runtime(agents={}) as runtime:
        runner = WorkflowRunner(compile_with(runtime, data), services=Services(llm=runtime.gateway), limits=RunLimits(timeout=20))
        goal = 'call:order_status({"order_id": 4}) call:weather({"city": "Oslo"})'
        events = [e async for e in runner.run({"q": goal}, query=goal, user="ann")]
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "agent")
    assert finished.status == "succeeded", finished.error
    assert finished.outputs["text"].startswith("Tool results: order 4 shipped ; ")
    assert finished.process_data["status"] == "succeeded" and finished.process_data["tool_calls"] == 2
    assert finished.process_data["thoughts"][0]["tool"] == "order_status;weather"
    chunks = [e.text for e in events if e.kind == "text_chunk"]
    assert len(chunks) > 1 and "".join(chunks) == finished.outputs["text"]
    logs = [e for e in events if e.kind == "agent_log"]
    assert {log.label for log in logs} >= {"ROUND 1", "ROUND 2", "CALL order_status", "CALL weather"}
    assert all(log.node_id == "agent" and log.node_execution_id == finished.id for log in logs)
    wire = dify_event(logs[0], task_id="t", workflow_run_id="r")
    assert wire["event"] == "agent_log"
    assert set(wire["data"]) == {"node_execution_id", "node_id", "id", "label", "parent_id", "status", "data",
                                 "error", "metadata"}  # fmt: skip
    assert events[-1].outputs == {"answer": finished.outputs["text"]}


async def test_agent_node_caps_iterations_and_runs_react(sim: Any, make_runtime: Any) -> None:
    models = {"light": {"url": sim.url, "model": "m", "headers": {"X-Sim-Tool-Style": "react"}}}
    script = " ".join(f'call@{k}:order_status({{"order_id": {k}}})' for k in range(1, 5))
    node_data = agent_node(query=script, strategy="ReAct", params={"maximum_iterations": {"type": "constant", "value": "2"}})
    data = dsl([START, node_data, node("end", "end", outputs=[{"variable": "out", "value_selector": ["agent", "text"]}])],
               ["start", "agent", "end"])
    async with make_runtime(models=models, agents={}) as runtime:
        runner = WorkflowRunner(compile_with(runtime, data), services=Services(llm=runtime.gateway), limits=RunLimits(timeout=20))
        result = await runner.run_blocking({"q": "unused"})
    assert result.status == "succeeded"
    assert result.outputs["out"] == "I stopped after 2 steps without reaching a final answer."


async def test_agent_node_data_is_checked_at_load(make_runtime: Any) -> None:
    bad = agent_node(tools=("order_status", "teleport"), strategy="tree_of_thought",
                     params={"maximum_iterations": {"type": "constant", "value": 500}})
    data = dsl([START, bad, node("end", "end", outputs=[])], ["start", "agent", "end"])
    async with make_runtime(agents={}) as runtime:
        with pytest.raises(ConfigError) as caught:
            compile_with(runtime, data)
    text = "\n".join(caught.value.issues)
    assert "Expected an agent strategy (function_calling, ReAct), got `tree_of_thought`" in text
    assert "got `teleport` - at `$.workflow.graph.nodes[1].data.agent_parameters.tools.value[1].tool_name`" in text
    assert "Expected `maximum_iterations` between 1 and 99, got `500`" in text


class WorkflowHost:
    """Stands in for ``gateway.run_workflow`` (the lead wires the real one): runs compiled workflows."""

    def __init__(self) -> None:
        self.runners: dict[str, WorkflowRunner] = {}
        self.depths: list[int] = []

    async def run_workflow(self, name: str, *, inputs: dict[str, Any], user: str) -> Any:
        self.depths.append(current_depth())
        return await self.runners[name].run_blocking(inputs, user=user)


async def test_workflow_tools_nest_up_to_their_depth_cap(make_runtime: Any) -> None:
    host = WorkflowHost()
    again = 'call:recurse({"q": "again"})'
    inner = dsl([START, agent_node(query=again, tools=("recurse",)),
                 node("end", "end", outputs=[{"variable": "answer", "value_selector": ["agent", "text"]}])],
                ["start", "agent", "end"])  # fmt: skip
    async with make_runtime(agents={}) as runtime:
        runtime.add_tool(WorkflowTool("recurse", "recurse", gateway=host, max_depth=2, timeout=10))
        runtime.add_agent("top", AgentConfig(model="light", tools=["recurse"]))
        host.runners["recurse"] = WorkflowRunner(compile_with(runtime, inner), services=Services(llm=runtime.gateway),
                                                 limits=RunLimits(timeout=20))  # fmt: skip
        result = await runtime.run("top", again, user="ann")
    assert host.depths == [1, 2]  # the third level was refused before running
    level1 = json.loads(json.loads(result.thoughts[0].observation)["recurse"])
    level2 = level1["answer"]
    assert level2 == (
        'Tool results: {"answer":"Tool results: Error: tool `recurse` failed: '
        'workflow tools may nest at most 2 deep; `recurse` would be level 3"}'
    )


def test_workflow_inputs_become_a_tool_schema() -> None:
    from tidegate.engine.nodes.start import InputVariable

    variables = [
        InputVariable(variable="city", label="City", type="text-input", required=True, max_length=40),
        {"variable": "mode", "type": "select", "options": ["car", "bike"]},
        {"variable": "days", "type": "number", "label": "Days", "required": True},
        {"variable": "", "type": "number"},
    ]
    assert inputs_schema(variables) == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City", "maxLength": 40},
            "mode": {"type": "string", "enum": ["car", "bike"]},
            "days": {"type": "number", "description": "Days"},
        },
        "required": ["city", "days"],
    }
