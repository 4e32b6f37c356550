"""The ReAct parser and stream filter, and the simulator's tool-call scripting they are tested with."""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from tidegate.agent.react import FinalAnswerFilter, parse_react
from tidegate.providers.simulator import Simulator
from tidegate.providers.simulator_text import plan_reply

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_args = st.dictionaries(st.text(max_size=6), _values, max_size=3)
_prose = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40).filter(
    lambda s: ":" not in s and s.strip() == s
)


@given(thought=_prose, name=_names, args=_args, fenced=st.booleans())
def test_actions_round_trip(thought: str, name: str, args: dict[str, Any], fenced: bool) -> None:
    payload = json.dumps(args)
    if fenced:
        payload = f"```json\n{payload}\n```"
    text = f"Thought: {thought}\nAction: {name}\nAction Input: {payload}\nObservation: made up"
    step = parse_react(text)
    assert (step.thought, step.action, step.final) == (thought, name, None)
    assert json.loads(step.arguments) == args


def test_lenient_forms() -> None:
    blob = parse_react('```json\n{"action": "weather", "action_input": {"city": "Oslo"}}\n```')
    assert (blob.action, blob.arguments) == ("weather", '{"city":"Oslo"}')
    final_blob = parse_react('{"action": "Final Answer", "action_input": "It is sunny."}')
    assert final_blob.final == "It is sunny."
    assert parse_react("Action: search\nAction Input: tides in Oslo").arguments == '{"input":"tides in Oslo"}'
    assert parse_react("no format at all").final == "no format at all"
    both = parse_react("Thought: t\nFinal Answer: done\nAction: x\nAction Input: {}")
    assert (both.action, both.final) == (None, "done\nAction: x\nAction Input: {}")


@given(answer=st.text(st.characters(blacklist_categories=("Cs",)), max_size=60).map(str.strip).filter(bool),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))  # fmt: skip
def test_stream_filter_shows_exactly_the_final_answer(answer: str, cuts: list[int]) -> None:
    if "\nObservation:" in answer:
        return
    text = f"Thought: I know it.\nFinal Answer: {answer}"
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    shown = ""
    filter_ = FinalAnswerFilter()
    for start, end in itertools.pairwise(points):
        shown += filter_.feed(text[start:end])
    step = parse_react(filter_.text)
    shown += filter_.rest(step)
    assert shown == step.final == answer


def test_stream_filter_hides_actions() -> None:
    filter_ = FinalAnswerFilter()
    shown = "".join(filter_.feed(piece) for piece in ["Thought: x\nAct", "ion: look", "\nAction Input: {}"])
    assert shown == "" and filter_.rest(parse_react(filter_.text)) == ""


# -- simulator scripting --------------------------------------------------------------------------


def test_rounds_are_scripted_with_call_at_k() -> None:
    goal = {"role": "user", "content": 'call:a({"x": 1}) call@2:b({}) call@2:c() call@3:a({"x": 3})'}
    first = plan_reply([goal], model="m", natural=5, limit=None, tools=True)
    assert [c.name for c in first.tool_calls or ()] == ["a"]
    history: list[Any] = [goal]
    for expected in (["b", "c"], ["a"]):
        calls = (plan_reply(history, model="m", natural=5, limit=None, tools=True).tool_calls or [])
        history += [{"role": "assistant", "tool_calls": [{"id": c.id} for c in calls]},
                    *({"role": "tool", "tool_call_id": c.id, "content": f"r{c.id}"} for c in calls)]  # fmt: skip
        after = plan_reply(history, model="m", natural=5, limit=None, tools=True)
        assert [c.name for c in after.tool_calls or ()] == expected
    assert [c.id for c in after.tool_calls or ()] == ["call_4"]
    history += [{"role": "assistant", "tool_calls": [{"id": "call_4"}]}, {"role": "tool", "content": "done"}]
    final = plan_reply(history, model="m", natural=5, limit=None, tools=True)
    assert final.tool_calls is None and final.text == "Tool results: done"
    assert plan_reply(history[:3], model="m", natural=5, limit=None, tools=False).text == "Tool results: rcall_1"


def test_react_style_acts_one_directive_per_turn() -> None:
    goal = {"role": "user", "content": 'call:a({"x": 1}) call@2:b()'}
    history: list[Any] = [{"role": "system", "content": "format..."}, goal]
    texts = []
    for observation in ("one", "two", None):
        reply = plan_reply(history, model="m", natural=3, limit=None, tools=False, style="react")
        texts.append(reply.text)
        history += [{"role": "assistant", "content": reply.text}]
        if observation:
            history.append({"role": "user", "content": f"Observation: {observation}"})
    assert texts == [
        'Thought: I should use a.\nAction: a\nAction Input: {"x":1}',
        "Thought: I should use b.\nAction: b\nAction Input: {}",
        "Thought: I now know the final answer.\nFinal Answer: Tool results: one ; two",
    ]
    plain = plan_reply([{"role": "user", "content": "hi"}], model="m", natural=3, limit=None, tools=False, style="react")
    assert (plain.text or "").startswith("Thought: I can answer directly.\nFinal Answer: ")


async def test_style_header_and_tool_choice_none_over_http(sim: Simulator) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "call:a()"}],
            "tools": [{"type": "function", "function": {"name": "a"}}]}  # fmt: skip
    async with aiohttp.ClientSession() as client:
        async with client.post(sim.url + "/chat/completions", json={**body, "tool_choice": "none"}) as resp:
            plain = await resp.json()
        async with client.post(sim.url + "/chat/completions", json=body, headers={"X-Sim-Tool-Style": "react"}) as resp:
            react = await resp.json()
        async with client.post(sim.url + "/chat/completions", json=body, headers={"X-Sim-Tool-Style": "nah"}) as resp:
            assert resp.status == 400
            assert "X-Sim-Tool-Style" in (await resp.json())["error"]["message"]
    assert plain["choices"][0]["finish_reason"] == "stop" and "tool_calls" not in plain["choices"][0]["message"]
    assert react["choices"][0]["message"]["content"] == "Thought: I should use a.\nAction: a\nAction Input: {}"
