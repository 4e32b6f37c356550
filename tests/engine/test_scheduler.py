"""Scheduling semantics: parallel fan-out, joins and skips, timeouts, retries, error strategies,
deadlines, step budgets, stop and abandonment — each run leaves no task behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.engine import (
    HttpPolicy,
    NodeRetry,
    RunLimits,
    Services,
    WorkflowRunner,
    compile_workflow,
)
from tidegate.engine.scheduler import MAX_BACKOFF, _backoff

pytestmark = pytest.mark.usefixtures("no_leaks")


def runner(data: dict[str, Any], http: Any = None, *, allow_private: bool = True, **limits: Any) -> WorkflowRunner:
    services = Services(http=http, http_policy=HttpPolicy(allow_private=allow_private, timeout=10))
    return WorkflowRunner(compile_workflow(data), services=services, limits=RunLimits(**limits))


def kinds(events: list[Any], node_id: str | None = None) -> list[str]:
    return [e.kind for e in events if node_id is None or getattr(e, "node_id", None) == node_id]


async def test_fan_out_runs_branches_concurrently(kit: Any, server: Any, http_client: Any) -> None:
    branches = [f"b{i}" for i in range(5)]
    nodes = [kit.start()] + [kit.http(b, f"{server.url}/sleep?ms=150&key={b}") for b in branches]
    nodes.append(kit.end(**{b: [b, "status_code"] for b in branches}))
    edges = [kit.edge("start", b) for b in branches] + [kit.edge(b, "end") for b in branches]
    result = await runner(kit.dsl(nodes, edges), http_client).run_blocking({})
    assert result.status == "succeeded"
    assert result.outputs == {b: 200 for b in branches}
    # All five requests were in flight at once on the server: true parallelism, not a serial walk.
    assert server.state.max_in_flight == 5


async def test_join_waits_for_all_taken_branches(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.start("x"),
            kit.tpl("a", "A{{ x }}", x=["start", "x"]),
            kit.tpl("b", "B{{ x }}", x=["start", "x"]),
            kit.tpl("join", "{{ a }}+{{ b }}", a=["a", "output"], b=["b", "output"]),
            kit.end(out=["join", "output"]),
        ],
        [kit.edge("start", "a"), kit.edge("start", "b"), kit.edge("a", "join"), kit.edge("b", "join"),
         kit.edge("join", "end")],
    )
    events = await kit.collect(runner(data).run({"x": "1"}))
    assert events[-1].outputs == {"out": "A1+B1"}
    assert kinds(events, "join") == ["node_started", "node_finished"]
    started = [e.node_id for e in events if e.kind == "node_started"]
    assert started.index("join") > max(started.index("a"), started.index("b"))


def branch_dsl(kit: Any) -> dict[str, Any]:
    cases = [{"case_id": "big", "logical_operator": "and",
              "conditions": [{"variable_selector": ["start", "n"], "comparison_operator": ">", "value": "10"}]}]
    return kit.dsl(
        [
            kit.node("start", "start", "Start", variables=[{"variable": "n", "type": "number"}]),
            kit.node("if", "if-else", "If", cases=cases),
            kit.tpl("big", "big {{ n }}", n=["start", "n"]),
            kit.tpl("small", "small {{ n }}", n=["start", "n"]),
            kit.tpl("small2", "{{ s }}!", s=["small", "output"]),
            kit.node("agg", "variable-aggregator", "Agg", output_type="string",
                     variables=[["big", "output"], ["small2", "output"]]),
            kit.end(out=["agg", "output"]),
        ],
        [kit.edge("start", "if"), kit.edge("if", "big", "big"), kit.edge("if", "small", "false"),
         kit.edge("small", "small2"), kit.edge("big", "agg"), kit.edge("small2", "agg"), kit.edge("agg", "end")],
    )


@pytest.mark.parametrize(("n", "out", "skipped"), [(42, "big 42", {"small", "small2"}), (3, "small 3!", {"big"})])
async def test_untaken_branches_are_skipped_and_join_still_runs(kit: Any, n: int, out: str, skipped: set[str]) -> None:
    events = await kit.collect(runner(branch_dsl(kit)).run({"n": n}))
    assert events[-1].status == "succeeded"
    assert events[-1].outputs == {"out": out}
    ran = {e.node_id for e in events if e.kind == "node_started"}
    assert ran.isdisjoint(skipped)
    assert "agg" in ran and "end" in ran
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "agg")
    assert finished.predecessor_node_id in ({"big"} if n > 10 else {"small2"})


async def test_node_timeout_cancels_the_request(kit: Any, server: Any, http_client: Any) -> None:
    data = kit.dsl([kit.start(), kit.http("h", f"{server.url}/hang"), kit.end(s=["h", "status_code"])],
                   kit.chain("start", "h", "end"))
    result = await runner(data, http_client, node_timeout=0.2).run_blocking({})
    assert result.status == "failed"
    assert result.error == "node `h` (h) failed: node timed out after 0.2s"
    for _ in range(50):
        if server.state.disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.state.disconnects == 1


async def test_retries_back_off_without_blocking_other_nodes(kit: Any, server: Any, http_client: Any) -> None:
    retry = {"retry_enabled": True, "max_retries": 3, "retry_interval": 300}
    data = kit.dsl(
        [
            kit.start(),
            kit.http("flaky", f"{server.url}/flaky?fail=2&key=flaky", retry_config=retry),
            kit.http("other", f"{server.url}/sleep?ms=1&key=other"),
            kit.end(a=["flaky", "body"], b=["other", "status_code"]),
        ],
        [kit.edge("start", "flaky"), kit.edge("start", "other"), kit.edge("flaky", "end"), kit.edge("other", "end")],
    )
    events = await kit.collect(runner(data, http_client, node_timeout=0.15).run({}))
    assert events[-1].status == "succeeded"
    retries = [e for e in events if isinstance(e, NodeRetry)]
    assert [(r.node_id, r.retry_index, r.error) for r in retries] == [
        ("flaky", 0, "node timed out after 0.15s"),
        ("flaky", 1, "node timed out after 0.15s"),
    ]
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "flaky")
    assert finished.execution_metadata == {"retry_count": 2}
    hits = server.state.hits
    assert len(hits["flaky"]) == 3
    # The sibling branch ran while the flaky node was timing out / sleeping between attempts.
    assert hits["other"][0] < hits["flaky"][1]
    # Exponential backoff with jitter: the 2nd gap (timeout + ~300-600ms) exceeds the 1st (timeout + 150-300ms).
    gap1 = hits["flaky"][1] - hits["flaky"][0]
    gap2 = hits["flaky"][2] - hits["flaky"][1]
    assert 0.15 + 0.15 <= gap1 and 0.15 + 0.3 <= gap2


@given(st.floats(0.001, 5), st.integers(1, 12))
def test_backoff_is_exponential_with_equal_jitter(interval: float, attempt: int) -> None:
    delay = min(MAX_BACKOFF, interval * 2 ** (attempt - 1))
    assert delay / 2 <= _backoff(interval, attempt) <= delay
    assert _backoff(0, attempt) == 0


def refused(kit: Any, node_id: str, **data: Any) -> dict[str, Any]:
    """An http node the SSRF guard refuses: a deterministic failure with no network involved."""
    return kit.http(node_id, "http://127.0.0.1:9/never", **data)


async def test_fail_branch_routes_around_the_failure(kit: Any, http_client: Any) -> None:
    data = kit.dsl(
        [
            kit.start(),
            refused(kit, "h", error_strategy="fail-branch"),
            kit.tpl("ok", "fine {{ b }}", b=["h", "body"]),
            kit.tpl("handled", "handled: {{ e }}", e=["h", "error_type"]),
            kit.node("agg", "variable-aggregator", "Agg", output_type="string",
                     variables=[["ok", "output"], ["handled", "output"]]),
            kit.end(out=["agg", "output"], msg=["h", "error_message"]),
        ],
        [kit.edge("start", "h"), kit.edge("h", "ok", "source"), kit.edge("h", "handled", "fail-branch"),
         kit.edge("ok", "agg"), kit.edge("handled", "agg"), kit.edge("agg", "end")],
    )
    events = await kit.collect(runner(data, http_client, allow_private=False).run({}))
    finished = events[-1]
    assert finished.status == "partial-succeeded"
    assert finished.exceptions_count == 1
    assert finished.outputs["out"] == "handled: SSRFBlocked"
    assert finished.outputs["msg"].startswith("refused to connect: 127.0.0.1 is not a public address")
    h = next(e for e in events if e.kind == "node_finished" and e.node_id == "h")
    assert h.status == "exception"
    assert "ok" not in {e.node_id for e in events if e.kind == "node_started"}


async def test_default_value_keeps_the_main_path(kit: Any, http_client: Any) -> None:
    defaults = [{"key": "body", "type": "string", "value": "fallback"},
                {"key": "status_code", "type": "number", "value": "0"}]
    data = kit.dsl(
        [kit.start(), refused(kit, "h", error_strategy="default-value", default_value=defaults),
         kit.end(body=["h", "body"], code=["h", "status_code"])],
        kit.chain("start", "h", "end"),
    )
    result = await runner(data, http_client, allow_private=False).run_blocking({})
    assert result.status == "partial-succeeded"
    assert result.outputs == {"body": "fallback", "code": 0}


async def test_unhandled_failure_fails_the_run_and_cancels_siblings(kit: Any, server: Any, http_client: Any) -> None:
    data = kit.dsl(
        [kit.start(), refused(kit, "bad"), kit.http("slow", f"{server.url}/hang"),
         kit.end(a=["bad", "body"], b=["slow", "body"])],
        [kit.edge("start", "bad"), kit.edge("start", "slow"), kit.edge("bad", "end"), kit.edge("slow", "end")],
    )
    events = await kit.collect(runner(data, http_client, allow_private=False).run({}))
    finished = events[-1]
    assert finished.status == "failed"
    assert finished.error.startswith("node `bad` (bad) failed: refused to connect: 127.0.0.1")
    bad = next(e for e in events if e.kind == "node_finished" and e.node_id == "bad")
    assert bad.status == "failed"


async def test_run_deadline_is_preemptive(kit: Any, server: Any, http_client: Any) -> None:
    data = kit.dsl([kit.start(), kit.http("h", f"{server.url}/hang"), kit.end(s=["h", "status_code"])],
                   kit.chain("start", "h", "end"))
    result = await runner(data, http_client, timeout=0.3).run_blocking({})
    assert result.status == "failed"
    assert result.error == "workflow exceeded its 0.3s deadline"
    for _ in range(50):
        if server.state.disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.state.disconnects == 1


async def test_max_steps_stops_a_runaway_loop(kit: Any) -> None:
    data = kit.dsl(
        [
            kit.start(),
            kit.node("lp", "loop", "Loop", loop_count=100, break_conditions=[], logical_operator="and",
                     loop_variables=[]),
            kit.node("lpstart", "loop-start", "", parent="lp"),
            kit.tpl("body", "x") | {"parentId": "lp"},
            kit.end(r=["lp", "loop_round"]),
        ],
        [kit.edge("start", "lp"), kit.edge("lpstart", "body"), kit.edge("lp", "end")],
    )
    result = await runner(data, max_steps=10).run_blocking({})
    assert result.status == "failed"
    assert result.error == "workflow exceeded its step budget of 10 node runs"
    assert result.total_steps == 11


async def test_stop_cancels_every_node(kit: Any, server: Any, http_client: Any) -> None:
    data = kit.dsl(
        [kit.start(), kit.http("a", f"{server.url}/hang"), kit.http("b", f"{server.url}/hang"),
         kit.end(a=["a", "body"], b=["b", "body"])],
        [kit.edge("start", "a"), kit.edge("start", "b"), kit.edge("a", "end"), kit.edge("b", "end")],
    )
    run = runner(data, http_client).start({})
    events = []
    async for event in run:
        events.append(event)
        if event.kind == "node_started" and event.node_id == "b":
            await asyncio.sleep(0.05)
            run.stop()
    assert events[-1].kind == "workflow_finished"
    assert events[-1].status == "stopped"
    assert run.result is not None and run.result.status == "stopped"
    for _ in range(50):
        if server.state.disconnects == 2:
            break
        await asyncio.sleep(0.01)
    assert server.state.disconnects == 2


async def test_stop_before_the_run_started(kit: Any) -> None:
    data = kit.dsl([kit.start(), kit.end()], kit.chain("start", "end"))
    run = runner(data).start({})
    run.stop()
    events = [event async for event in run]
    assert [e.kind for e in events] == ["workflow_finished"]
    assert events[0].status == "stopped"


async def test_abandoned_stream_cancels_the_run(kit: Any, server: Any, http_client: Any) -> None:
    data = kit.dsl([kit.start(), kit.http("h", f"{server.url}/hang"), kit.end(s=["h", "body"])],
                   kit.chain("start", "h", "end"))
    agen = runner(data, http_client).run({})
    async for event in agen:
        if event.kind == "node_started" and event.node_id == "h":
            break
    while not server.state.hits.get("hang"):
        await asyncio.sleep(0.01)
    await agen.aclose()
    for _ in range(50):
        if server.state.disconnects:
            break
        await asyncio.sleep(0.01)
    assert server.state.disconnects == 1


async def test_event_indexes_and_predecessors(kit: Any) -> None:
    data = kit.dsl([kit.start("x"), kit.tpl("t", "{{ x }}", x=["start", "x"]), kit.end(o=["t", "output"])],
                   kit.chain("start", "t", "end"))
    events = await kit.collect(runner(data).run({"x": "v"}))
    started = [e for e in events if e.kind == "node_started"]
    assert [(e.node_id, e.index, e.predecessor_node_id) for e in started] == [
        ("start", 1, None), ("t", 2, "start"), ("end", 3, "t"),
    ]
    assert events[0].kind == "workflow_started" and events[0].inputs == {"x": "v"}
    assert events[-1].total_steps == 3
