"""The Dify DSL corpus: every workflow in ``workflows/`` runs against the simulator, blocking and
streaming, and must produce the outputs and event sequence its ``.expect.yml`` pins; every file in
``invalid/`` must be refused at load with exactly the messages pinned beside it.

Expectation files::

    env: {BASE_URL: "{base_url}"}        # DSL environment overrides ({base_url}: the echo server)
    runs:
      - inputs: {...}                      # start-node inputs
        query: "..."                       # chatflows: the user's message
        conversation: c1                   # runs naming the same key share one conversation
        status: succeeded
        outputs: {...}                     # exact outputs, or
        outputs_match: {key: regex}        # regexes for values the simulator words
        answer: "..." | answer_match: regex
        events: ["workflow_started", "node_started start", "text_chunk llm.text", ...]
        ordered: false                     # parallel branches: compare as a multiset
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidegate.engine import (
    CodeLimits,
    Conversation,
    HttpPolicy,
    RunLimits,
    Services,
    WorkflowRunner,
    load_workflow,
)
from tidegate.errors import ConfigError

HERE = Path(__file__).resolve().parent
WORKFLOWS = sorted(p for p in (HERE / "workflows").glob("*.yml") if not p.name.endswith(".expect.yml"))
INVALID = sorted(p for p in (HERE / "invalid").glob("*.yml") if not p.name.endswith(".expect.yml"))


def expectation(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.with_name(path.stem + ".expect.yml").read_text(encoding="utf-8"))


def summarize(events: list[Any]) -> list[str]:
    """Events as ``kind node`` strings; consecutive text chunks of one variable count once."""
    out: list[str] = []
    for event in events:
        if event.kind == "text_chunk":
            item = "text_chunk " + ".".join(event.from_variable_selector or [])
            if out and out[-1] == item:
                continue
        elif hasattr(event, "node_id"):
            item = f"{event.kind} {event.node_id}"
        else:
            item = event.kind
        out.append(item)
    return out


def check(run: dict[str, Any], result: Any) -> None:
    assert result.status == run.get("status", "succeeded"), result.error
    if "error" in run:
        assert result.error == run["error"]
    if "outputs" in run:
        assert result.outputs == run["outputs"]
    for key, pattern in (run.get("outputs_match") or {}).items():
        assert re.fullmatch(pattern, str(result.outputs[key])), (key, result.outputs[key])
    if "answer" in run:
        assert result.answer == run["answer"]
    if "answer_match" in run:
        assert re.fullmatch(run["answer_match"], result.answer), result.answer


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
async def test_workflow(path: Path, mode: str, services: dict[str, Any]) -> None:
    expect = expectation(path)
    env = {k: str(v).format(base_url=services["base_url"]) for k, v in (expect.get("env") or {}).items()}
    workflow = load_workflow(path, env=env)
    runner = WorkflowRunner(
        workflow,
        services=Services(llm=services["gateway"], http=services["http"], code=services["sandbox"],
                          http_policy=HttpPolicy(allow_private=expect.get("allow_private", False)),
                          code_limits=CodeLimits(cpu_time=2, wall_time=5)),
        limits=RunLimits(timeout=20),
    )  # fmt: skip
    conversations: dict[str, Conversation] = {}
    for run in expect["runs"]:
        kwargs: dict[str, Any] = {"user": "conformance", "query": run.get("query", "")}
        if "conversation" in run:
            kwargs["conversation"] = conversations.setdefault(run["conversation"], Conversation())
        if mode == "blocking":
            check(run, await runner.run_blocking(run.get("inputs") or {}, **kwargs))
            continue
        async with runner.start(run.get("inputs") or {}, **kwargs) as handle:
            events = [event async for event in handle]
        assert handle.result is not None
        check(run, handle.result)
        finished = events[-1]
        assert finished.kind == "workflow_finished" and finished.outputs == handle.result.outputs
        if "events" in run:
            seen, wanted = summarize(events), list(run["events"])
            if run.get("ordered", True):
                assert seen == wanted
            else:
                assert (seen[0], seen[-1]) == (wanted[0], wanted[-1])
                assert sorted(seen) == sorted(wanted)
    await asyncio.sleep(0)
    # The simulator's own keep-alive handlers may idle on; no task of the engine may.
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("tidegate") and not t.done()] == []


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_dsl_is_refused(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_workflow(path)
    expected = [issue.replace("{file}", str(path)) for issue in expectation(path)["issues"]]
    assert info.value.issues == expected
