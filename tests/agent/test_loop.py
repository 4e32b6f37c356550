"""The agent loop against the real simulator: tool rounds, parallel calls, failures and caps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tidegate.agent import AgentFinished, AgentLog, AgentMessage, AgentStarted, AgentThought
from tidegate.config.agents import AgentConfig
from tidegate.errors import NotFoundError, RequestError, TidegateError

from .agent_support import CALLS

HELPER = {"model": "light", "tools": ["order_status", "weather", "slow", "broken", "nap"]}


class Rendezvous:
    """Two calls succeed only if they run at the same time (each waits for the other)."""

    def __init__(self) -> None:
        self.barrier = asyncio.Barrier(2)

    async def __call__(self, who: str) -> str:
        async with asyncio.timeout(2):
            await self.barrier.wait()
        return f"{who} met the other"


async def collect(stream: Any) -> list[Any]:
    return [event async for event in stream]


async def test_multi_step_run_with_two_parallel_tool_calls(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        runtime.add_tool(Rendezvous(), name="meet", description="Meet someone.")
        runtime.add_agent("party", AgentConfig(model="light", tools=["meet", "weather"]))
        goal = 'go call:meet({"who": "ann"}) call:meet({"who": "bob"}) call@2:weather({"city": "Oslo"})'
        result = await runtime.run("party", goal, user="u1")
    assert result.status == "succeeded"
    assert result.steps == 3 and result.tool_calls == 3
    first, second = result.thoughts
    assert first.position == 1 and first.tool == "meet;meet"
    assert json.loads(first.tool_input) == {"meet": {"who": "ann"}, "meet#2": {"who": "bob"}}
    assert json.loads(first.observation) == {"meet": "ann met the other", "meet#2": "bob met the other"}
    assert second.tool == "weather" and "sunny" in second.observation
    assert result.answer.startswith("Tool results:") and "Oslo" in result.answer
    assert result.usage.total_tokens > 0


async def test_sync_tools_run_on_the_worker_pool_and_async_ones_on_the_loop(make_runtime: Any) -> None:
    CALLS.clear()
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        result = await runtime.run("helper", 'call:order_status({"order_id": 1}) call:weather({"city": "Rome"})')
    assert result.status == "succeeded"
    threads = dict(CALLS)
    assert threads["order_status"].startswith("tidegate-worker")
    assert threads["weather"] == "Rome"


async def test_a_tool_that_times_out_becomes_an_observation(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        result = await runtime.run("helper", 'call:slow({"seconds": 5}) call:order_status({"order_id": 9})')
    assert result.status == "succeeded"
    observation = json.loads(result.thoughts[0].observation)
    assert observation["slow"] == "Error: tool `slow` timed out after 0.1s"
    assert observation["order_status"] == "order 9 shipped"
    assert "timed out" in result.answer and "order 9 shipped" in result.answer


async def test_a_tool_that_raises_becomes_an_observation(make_runtime: Any, no_leaked_tasks: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        events = await collect(runtime.stream("helper", 'call:broken({"reason": "disk"}) call@2:weather({"city": "Oslo"})'))
    finished = events[-1]
    assert isinstance(finished, AgentFinished)
    result = finished.result
    assert result.status == "succeeded" and result.steps == 3
    assert result.thoughts[0].observation == json.dumps(
        {"broken": "Error: tool `broken` raised RuntimeError: backend exploded: disk"}, separators=(",", ":")
    )
    errors = [e for e in events if isinstance(e, AgentLog) and e.status == "error"]
    assert [e.label for e in errors] == ["CALL broken"]
    assert errors[0].error == "tool `broken` raised RuntimeError: backend exploded: disk"
    await no_leaked_tasks()


async def test_step_cap_ends_with_a_clean_final_message_and_records_the_status(make_runtime: Any) -> None:
    script = " ".join(f'call@{k}:order_status({{"order_id": {k}}})' for k in range(1, 6))
    async with make_runtime(agents={"helper": {**HELPER, "max_steps": 2}}) as runtime:
        result = await runtime.run("helper", script, user="ann")
        conversation = await runtime.sessions.get(None, "ann", result.conversation_id or "")
    assert result.status == "max_steps"
    assert result.steps == 2 and result.tool_calls == 2
    # The wrap-up turn had tools withheld (tool_choice none), so the model wrote a final answer.
    assert result.answer == "Tool results: order 2 shipped"
    assert conversation.turns[-1].status == "max_steps"
    assert conversation.turns[-1].answer == result.answer
    assert conversation.turns[-1].metadata["steps"] == 2


async def test_tool_call_cap_answers_every_call_and_stops(make_runtime: Any) -> None:
    goal = " ".join(f'call:order_status({{"order_id": {k}}})' for k in range(3)) + ' call@2:weather({"city": "X"})'
    async with make_runtime(agents={"helper": {**HELPER, "max_tool_calls": 2}}) as runtime:
        result = await runtime.run("helper", goal)
    assert result.status == "max_tool_calls"
    assert result.tool_calls == 2
    observation = json.loads(result.thoughts[0].observation)
    assert observation["order_status#3"] == "Error: the run's budget of 2 tool calls is used up"
    assert "weather" not in result.answer


async def test_token_budget_stops_the_run_without_another_model_call(make_runtime: Any) -> None:
    script = " ".join(f'call@{k}:order_status({{"order_id": {k}}})' for k in range(1, 9))
    async with make_runtime(agents={"helper": {**HELPER, "max_tokens": 60}}) as runtime:
        result = await runtime.run("helper", script)
    assert result.status == "token_budget"
    assert result.usage.total_tokens >= 60
    assert result.answer == "I stopped after using my budget of 60 tokens without reaching a final answer."


async def test_run_deadline_ends_the_run_with_a_timeout_status(make_runtime: Any, no_leaked_tasks: Any) -> None:
    tools = {"slow": {"python": "agent.agent_support:slow", "timeout": "10s"}}
    async with make_runtime(tools=tools, agents={"helper": {"model": "light", "tools": ["slow"], "timeout": "300ms"}}) as runtime:
        events = await collect(runtime.stream("helper", 'call:slow({"seconds": 30})'))
    result = events[-1].result
    assert result.status == "timeout"
    assert result.answer == "I ran out of time (0.3s) before reaching a final answer."
    assert [e.answer for e in events if isinstance(e, AgentMessage)] == [result.answer]
    await no_leaked_tasks()


async def test_streamed_answer_matches_the_blocking_answer(make_runtime: Any) -> None:
    goal = 'call:order_status({"order_id": 5}) call@2:weather({"city": "Lima"})'
    async with make_runtime(agents={"helper": {**HELPER, "memory": False}}) as runtime:
        blocking = await runtime.run("helper", goal)
        events = await collect(runtime.stream("helper", goal))
    kinds = [type(e) for e in events]
    assert kinds[0] is AgentStarted and kinds[-1] is AgentFinished
    streamed = "".join(e.answer for e in events if isinstance(e, AgentMessage))
    assert streamed == blocking.answer == events[-1].result.answer
    thoughts = [e for e in events if isinstance(e, AgentThought)]
    assert [t.observation == "" for t in thoughts] == [True, False, True, False]  # picked, then done
    assert thoughts[0].id == thoughts[1].id
    assert blocking.conversation_id is None  # memory off: nothing stored


async def test_closing_the_stream_early_cancels_cleanly(make_runtime: Any, no_leaked_tasks: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        stream = runtime.stream("helper", 'call:nap({"ms": 5000})')
        async for event in stream:
            if isinstance(event, AgentThought):
                break
        await stream.aclose()
    await no_leaked_tasks()  # the 5 s nap was cancelled with the stream


async def test_unknown_tool_names_and_bad_arguments_are_observations(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        result = await runtime.run("helper", 'call:teleport({}) call:order_status({"order_id": "x"})')
    observation = json.loads(result.thoughts[0].observation)
    assert observation["teleport"] == "Error: there is no tool named `teleport`"
    assert observation["order_status"] == (
        "Error: tool `order_status` failed: invalid arguments: Expected `int`, got `str` - at `$.order_id`"
    )


async def test_react_strategy_for_models_without_tool_calling(sim: Any, make_runtime: Any) -> None:
    models = {"plain": {"url": sim.url, "model": "old", "headers": {"X-Sim-Tool-Style": "react"}}}
    agent = {"model": "plain", "tools": ["order_status", "weather"], "strategy": "react"}
    goal = 'call:order_status({"order_id": 3}) call@2:weather({"city": "Oslo"})'
    async with make_runtime(models=models, agents={"helper": agent}) as runtime:
        blocking = await runtime.run("helper", goal)
        events = await collect(runtime.stream("helper", goal))
    assert blocking.status == "succeeded" and blocking.tool_calls == 2
    assert [t.tool for t in blocking.thoughts] == ["order_status", "weather"]
    assert blocking.thoughts[0].thought == "I should use order_status."
    assert blocking.answer.startswith("Tool results: order 3 shipped ; ")
    streamed = "".join(e.answer for e in events if isinstance(e, AgentMessage))
    assert streamed == blocking.answer  # only the final answer reaches the user
    assert "Action" not in streamed


async def test_react_step_cap_falls_back_when_the_model_keeps_acting(sim: Any, make_runtime: Any) -> None:
    models = {"plain": {"url": sim.url, "model": "old", "headers": {"X-Sim-Tool-Style": "react"}}}
    agent = {"model": "plain", "tools": ["order_status"], "strategy": "react", "max_steps": 1}
    goal = " ".join(f'call@{k}:order_status({{"order_id": {k}}})' for k in range(1, 4))
    async with make_runtime(models=models, agents={"helper": agent}) as runtime:
        result = await runtime.run("helper", goal)
    assert result.status == "max_steps"
    assert result.answer == "I stopped after 1 steps without reaching a final answer."


async def test_model_failures_raise_and_store_nothing(sim: Any, make_runtime: Any) -> None:
    models = {"light": {"url": sim.url, "model": "m", "headers": {"X-Sim-Fault": "500"}}}
    async with make_runtime(models=models, agents={"helper": HELPER}) as runtime:
        with pytest.raises(TidegateError, match="light:500"):  # routing's retries are spent first
            await runtime.run("helper", "hello", user="u")
        listed, _ = await runtime.sessions.list_conversations(None, "u")
    assert listed == []


async def test_unknown_agent_and_empty_goal_are_request_errors(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        with pytest.raises(NotFoundError, match="agent `nope` does not exist"):
            await runtime.run("nope", "hi")
        with pytest.raises(RequestError, match="non-empty goal"):
            await runtime.run("helper", "  ")


async def test_tools_get_the_callers_identity_not_the_models(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": {"model": "light", "tools": ["whoami"]}}) as runtime:
        result = await runtime.run("helper", 'call:whoami({"note": "hi"})', tenant="acme", user="ann")
        schema = runtime.tools.get("whoami").parameters  # type: ignore[union-attr]
    assert "ctx" not in schema["properties"]
    assert result.answer == "Tool results: tenant=acme user=ann note=hi"


@pytest.mark.parametrize("streamed", [True, False])
async def test_run_deadline_cuts_a_slow_model_call(sim: Any, make_runtime: Any, no_leaked_tasks: Any, streamed: bool) -> None:
    models = {"slow": {"url": sim.url, "model": "m", "headers": {"X-Sim-TTFT-Ms": "5000"}}}
    agent = {"model": "slow", "tools": ["order_status"], "timeout": "200ms"}
    async with make_runtime(models=models, agents={"helper": agent}) as runtime:
        if streamed:
            result = (await collect(runtime.stream("helper", "hello")))[-1].result
        else:
            result = await runtime.run("helper", "hello")
        assert result.status == "timeout" and result.steps == 0
        assert result.answer == "I ran out of time (0.2s) before reaching a final answer."
        # The loop is still usable afterwards: nothing was left cancelled.
        await asyncio.sleep(0.01)
    await no_leaked_tasks()


async def test_a_cancelled_consumer_is_not_mistaken_for_the_deadline(sim: Any, make_runtime: Any) -> None:
    models = {"slow": {"url": sim.url, "model": "m", "headers": {"X-Sim-TTFT-Ms": "5000"}}}
    async with make_runtime(models=models, agents={"helper": {"model": "slow", "timeout": "10s"}}) as runtime:
        task = asyncio.create_task(collect(runtime.stream("helper", "hello")))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_only_the_last_calls_route_headers_are_kept(make_runtime: Any) -> None:
    from tidegate.context import RequestContext

    ctx = RequestContext()
    async with make_runtime(agents={"helper": HELPER}) as runtime:
        await runtime.run("helper", 'call:order_status({"order_id": 1}) call@2:order_status({"order_id": 2})', ctx=ctx)
    names = [name for name, _ in ctx.response_headers]
    assert names and len(names) == len(set(names))
    assert ctx.upstream_seconds > 0


async def test_events_map_onto_dify_chat_events(make_runtime: Any) -> None:
    from tidegate.agent.events import dify_agent_event

    async with make_runtime(agents={"helper": HELPER}) as runtime:
        events = await collect(runtime.stream("helper", 'call:order_status({"order_id": 8})'))
    wire = [dify_agent_event(e, task_id="t1", message_id="m1", conversation_id="c1") for e in events]
    kinds = [w["event"] for w in wire if w is not None]
    assert kinds[0] == "agent_thought" and kinds[-1] == "message_end" and "agent_message" in kinds
    thought = next(w for w in wire if w and w["event"] == "agent_thought")
    assert set(thought) >= {"id", "task_id", "message_id", "conversation_id", "position", "thought", "observation",
                            "tool", "tool_input", "created_at", "message_files"}  # fmt: skip
    end = wire[-1]
    assert end is not None and end["metadata"]["usage"]["total_tokens"] > 0
    assert end["metadata"]["agent"]["status"] == "succeeded"
