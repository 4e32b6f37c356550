"""The tool registry and call policy: schemas from signatures, timeouts, retries, caps, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import msgspec
import pytest

from tidegate import Gateway
from tidegate.agent import AgentRuntime, Tool, ToolContext
from tidegate.agent.python_tool import PythonTool, import_callable
from tidegate.agent.schema import describe_callable, parse_docstring
from tidegate.agent.tools import execute, render_output
from tidegate.config import parse_config
from tidegate.config.agents import RetryConfig
from tidegate.errors import ConfigError

from .agent_support import Flaky
from .conftest import agents_config

CTX = ToolContext(run_id="r", agent="a")


class Point(msgspec.Struct):
    x: int
    y: int


def plan_route(start: Point, stops: list[str], mode: Literal["car", "bike"] = "car", *, avoid_tolls: bool = False) -> str:
    """Plan a route through some stops.

    A second paragraph the model does not need.

    Args:
        start: Where to leave from.
        stops: Places to visit,
            in order.
        mode: How to travel.

    Returns:
        The route.
    """
    return f"{start.x},{start.y} via {len(stops)} stops by {mode}"


def test_schema_from_type_hints_and_docstring() -> None:
    schema = describe_callable(plan_route)
    assert schema.description == "Plan a route through some stops."
    params = schema.parameters
    assert params["type"] == "object" and params["required"] == ["start", "stops"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["start"] == {"$ref": "#/$defs/Point", "description": "Where to leave from."}
    assert props["stops"] == {"type": "array", "items": {"type": "string"}, "description": "Places to visit, in order."}
    assert props["mode"] == {"enum": ["bike", "car"], "default": "car", "description": "How to travel."}
    assert props["avoid_tolls"] == {"type": "boolean", "default": False}
    assert params["$defs"]["Point"]["required"] == ["x", "y"]
    assert schema.convert({"start": {"x": 1, "y": 2}, "stops": ["a"]})["start"] == Point(1, 2)


@pytest.mark.parametrize(
    ("doc", "summary", "params"),
    [
        (":param city: The city.\n:param days: How many\n    days ahead.\n:returns: text", "", {"city": "The city.", "days": "How many days ahead."}),
        ("Weather.\n\nParameters\n----------\ncity : str\n    The city.\ndays : int\n    How many.\n\nReturns\n-------\nstr", "Weather.", {"city": "The city.", "days": "How many."}),
        ("Just a summary\nover two lines.", "Just a summary over two lines.", {}),
        (None, "", {}),
    ],
)
def test_docstring_styles(doc: str | None, summary: str, params: dict[str, str]) -> None:
    assert parse_docstring(doc) == (summary, params)


def test_tool_specs_for_openai_and_mcp() -> None:
    tool = PythonTool("route", plan_route, pool=None)  # type: ignore[arg-type]
    assert tool.openai_spec["type"] == "function"
    assert tool.openai_spec["function"]["name"] == "route"
    assert tool.mcp_spec == {"name": "route", "description": "Plan a route through some stops.", "inputSchema": tool.parameters}


def test_render_output_is_text_for_the_model() -> None:
    assert render_output("plain") == "plain"
    assert render_output({"a": [1, 2]}) == '{"a":[1,2]}'
    assert render_output(Point(1, 2)) == '{"x":1,"y":2}'
    long = render_output("x" * 20_000)
    assert long.endswith("… [cut: 4000 more characters]")


async def call(tool: Tool | None, arguments: Any, name: str | None = None) -> Any:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return await execute(tool, call_id="c1", name=name or (tool.name if tool else "?"), arguments=raw, ctx=CTX)


async def test_retries_follow_the_policy() -> None:
    flaky = Flaky(failures=2)
    tool = PythonTool("flaky", flaky, pool=None, retry=RetryConfig(attempts=3, backoff=0.001))  # type: ignore[arg-type]
    outcome = await call(tool, {"x": 1})
    assert (outcome.status, outcome.output, outcome.attempts) == ("ok", "ok after 3", 3)
    stubborn = PythonTool("flaky", Flaky(failures=5), pool=None, retry=RetryConfig(attempts=2, backoff=0.001))  # type: ignore[arg-type]
    outcome = await call(stubborn, {})
    assert outcome.status == "error" and outcome.attempts == 2
    assert outcome.error == "tool `flaky` raised ConnectionError: attempt 2 failed"
    only_timeouts = PythonTool("flaky", Flaky(failures=5), pool=None, retry=RetryConfig(attempts=3, on=["timeout"]))  # type: ignore[arg-type]
    assert (await call(only_timeouts, {})).attempts == 1


async def test_timeouts_are_retried_and_reported() -> None:
    async def hang() -> str:
        await asyncio.sleep(10)
        return "never"

    tool = PythonTool("hang", hang, pool=None, timeout=0.02, retry=RetryConfig(attempts=2, backoff=0.001))  # type: ignore[arg-type]
    outcome = await call(tool, {})
    assert (outcome.status, outcome.attempts) == ("timeout", 2)
    assert outcome.output == "Error: tool `hang` timed out after 0.02s"


async def test_concurrency_cap_limits_calls_in_flight() -> None:
    running = peak = 0

    async def busy() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "done"

    tool = PythonTool("busy", busy, pool=None, max_concurrency=2)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(call(tool, {}) for _ in range(7)))
    assert [o.status for o in outcomes] == ["ok"] * 7
    assert peak == 2


async def test_bad_arguments_are_outcomes_not_exceptions() -> None:
    tool = PythonTool("route", plan_route, pool=None)  # type: ignore[arg-type]
    assert (await call(tool, "{not json")).error.startswith("the arguments are not valid JSON")  # type: ignore[union-attr]
    assert (await call(tool, "[1]")).error == "Expected the arguments to be a JSON object, got `list`"
    missing = await call(tool, {"stops": []})
    assert missing.error == "tool `route` failed: invalid arguments: Object missing required field `start`"
    extra = await call(tool, {"start": {"x": 1, "y": 1}, "stops": [], "speed": 3})
    assert extra.error == "tool `route` failed: invalid arguments: Object contains unknown field `speed`"
    assert (await call(None, {}, name="ghost")).output == "Error: there is no tool named `ghost`"


def test_import_callable_says_what_is_wrong() -> None:
    assert import_callable("agent.agent_support:order_status").__name__ == "order_status"
    assert import_callable("agent.agent_support:Flaky.__call__").__name__ == "__call__"
    for ref, message in [
        ("nomodule_xyz:f", "Cannot import module `nomodule_xyz`"),
        ("agent.agent_support:nope", "has no attribute `nope`"),
        ("agent.agent_support:NOT_CALLABLE", "to be callable, got a `int`"),
        ("no_colon", "Expected `module:function`"),
    ]:
        with pytest.raises(ValueError, match=message):
            import_callable(ref)


def test_broken_tool_references_fail_at_startup_with_paths() -> None:
    gateway = Gateway(parse_config({"models": {"light": {"url": "http://127.0.0.1:9/v1"}}}))
    config = agents_config({
        "tools": {"a": {"python": "agent.agent_support:nope"}, "b": {"python": "nomodule_xyz:f"}},
        "agents": {"x": {"model": "light", "tools": ["a", "zzz"]}},
    })  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        AgentRuntime(gateway, config)
    assert caught.value.issues == [
        "Expected a tool from `tools:` (`a`, `b`), got `zzz` - at `$.agents.x.tools[1]`",
        "Module `agent.agent_support` has no attribute `nope` - at `$.tools.a.python`",
        "Cannot import module `nomodule_xyz` (No module named 'nomodule_xyz') - at `$.tools.b.python`",
    ]


async def test_sync_tools_do_not_block_the_loop(make_runtime: Any) -> None:
    tools = {"block": {"python": "agent.agent_support:blocking_sleep"}}
    async with make_runtime(tools=tools, agents={"a": {"model": "light", "tools": ["block"]}}) as runtime:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        outcome = await execute(runtime.tools.get("block"), call_id="c", name="block", arguments='{"ms": 200}', ctx=CTX)
        task.cancel()
    assert outcome.output.startswith("tidegate-worker")
    assert ticks >= 5  # the loop kept turning while the tool slept in its thread


async def test_host_code_can_register_functions_and_tools(make_runtime: Any) -> None:
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    async with make_runtime(tools={}, agents={}) as runtime:
        tool = runtime.add_tool(add, timeout=1)
        assert runtime.tools.names() == ["add"] and tool.description == "Adds two numbers."
        outcome = await execute(tool, call_id="c", name="add", arguments='{"a": 2, "b": 3}', ctx=CTX)
    assert outcome.output == "5"
