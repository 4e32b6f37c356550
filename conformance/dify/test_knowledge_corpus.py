"""The knowledge-retrieval corpus: DSLs in ``knowledge/`` run over two real knowledge bases (the
``hash`` embedder over ``knowledge/docs/``) and the LLM simulator, blocking and streaming; files in
``knowledge/invalid/`` must be refused at load with exactly the pinned messages.

Expectation files add to the main corpus's keys (``runs``, ``query``, ``inputs``, ``conversation``,
``status``, ``error``, ``answer_match``, ``events``)::

    datasets: {ds-id: base}             # the app's `datasets:` map (default: DATASETS below)
    runs:
      - results:                         # workflow output, or `node.var` (checked when streaming)
          result: [{title: ..., dataset_id: ..., content_match: regex, ...}]   # exact length
        resources: [{position: 1, document_name: ...}]   # the run's retriever_resources
        prompt_contains: {llm: "text"}   # the LLM node's prompt (streaming) holds this text
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.engine import (
    Conversation,
    RunLimits,
    Services,
    WorkflowRunner,
    default_registry,
    load_workflow,
)
from tidegate.errors import ConfigError
from tidegate.knowledge.node import register_knowledge_node
from tidegate.providers.simulator import Simulator, SimulatorConfig

HERE = Path(__file__).resolve().parent / "knowledge"
WORKFLOWS = sorted(p for p in HERE.glob("*.yml") if not p.name.endswith(".expect.yml"))
INVALID = sorted(p for p in (HERE / "invalid").glob("*.yml") if not p.name.endswith(".expect.yml"))
DATASETS = {"ds-after-sales": "after_sales", "ds-shipping": "shipping"}


def expectation(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.with_name(path.stem + ".expect.yml").read_text(encoding="utf-8"))


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0)) as sim:
        config = parse_config({
            "models": {"sim-small": {"url": sim.url}},
            "embeddings": {"default": {"kind": "hash"}},
            "knowledge": {
                name: {"index": str(tmp_path / name), "source": str(HERE / "docs" / name)}
                for name in ("after_sales", "shipping")
            },
        })  # fmt: skip
        async with Gateway(config) as gw:
            for base in gw.knowledge.values():
                await base.ingest(save=False)
            yield gw


def summarize(events: list[Any]) -> list[str]:
    out: list[str] = []
    for event in events:
        if event.kind == "text_chunk":
            item = "text_chunk " + ".".join(event.from_variable_selector or [])
            if out and out[-1] == item:
                continue
        else:
            item = f"{event.kind} {event.node_id}" if hasattr(event, "node_id") else event.kind
        out.append(item)
    return out


def check_items(got: list[dict[str, Any]], wanted: list[dict[str, Any]], *, flat: bool) -> None:
    """``wanted`` pins the length and some fields of each item (``flat``: resources, not result items)."""
    assert len(got) == len(wanted), [item.get("title") for item in got]
    for item, expected in zip(got, wanted, strict=True):
        for key, value in expected.items():
            if key == "content_match":
                assert re.fullmatch(value, item["content"], re.DOTALL), item["content"]
            elif flat or key in ("title", "content"):
                assert item[key] == value, (key, item[key])
            else:
                assert item["metadata"][key] == value, (key, item["metadata"][key])
        if not flat:
            assert item["metadata"]["_source"] == "knowledge"
            assert isinstance(item["metadata"]["score"], float)


def check(run: dict[str, Any], result: Any, node_outputs: dict[str, dict[str, Any]] | None) -> None:
    assert result.status == run.get("status", "succeeded"), result.error
    if "error" in run:
        assert result.error == run["error"]
    if "answer_match" in run:
        assert re.fullmatch(run["answer_match"], result.answer), result.answer
    for name, wanted in (run.get("results") or {}).items():
        if "." in name:
            if node_outputs is None:
                continue  # intermediate outputs are only visible in the event stream
            node, var = name.split(".", 1)
            check_items(node_outputs[node][var], wanted, flat=False)
        else:
            check_items(result.outputs[name], wanted, flat=False)
    if "resources" in run:
        check_items(result.retriever_resources, run["resources"], flat=True)


@pytest.mark.parametrize("mode", ["blocking", "streaming"])
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
async def test_knowledge_workflow(path: Path, mode: str, gateway: Gateway) -> None:
    expect = expectation(path)
    registry = default_registry()
    register_knowledge_node(registry, gateway)
    workflow = load_workflow(path, registry=registry, datasets=expect.get("datasets", DATASETS))
    runner = WorkflowRunner(workflow, services=Services(llm=gateway), limits=RunLimits(timeout=20))
    conversations: dict[str, Conversation] = {}
    for run in expect["runs"]:
        kwargs: dict[str, Any] = {"user": "conformance", "query": run.get("query", "")}
        if "conversation" in run:
            kwargs["conversation"] = conversations.setdefault(run["conversation"], Conversation())
        if mode == "blocking":
            check(run, await runner.run_blocking(run.get("inputs") or {}, **kwargs), None)
            continue
        async with runner.start(run.get("inputs") or {}, **kwargs) as handle:
            events = [event async for event in handle]
        assert handle.result is not None
        finished = {e.node_id: e for e in events if e.kind == "node_finished"}
        check(run, handle.result, {node: e.outputs or {} for node, e in finished.items()})
        for node, text in (run.get("prompt_contains") or {}).items():
            prompts = finished[node].process_data["prompts"]  # type: ignore[index]
            assert any(text in message["content"] for message in prompts), prompts
        if "events" in run:
            assert summarize(events) == run["events"]
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("tidegate") and not t.done()] == []


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
async def test_invalid_knowledge_dsl_is_refused(path: Path, gateway: Gateway) -> None:
    registry = default_registry()
    register_knowledge_node(registry, gateway)
    with pytest.raises(ConfigError) as info:
        load_workflow(path, registry=registry, datasets=DATASETS)
    expected = [issue.replace("{file}", str(path)) for issue in expectation(path)["issues"]]
    assert info.value.issues == expected
