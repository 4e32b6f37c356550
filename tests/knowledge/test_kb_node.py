"""The knowledge-retrieval workflow node over real knowledge bases (hash embedder) and the
simulator: Dify's result shape, dataset mapping and load errors, retrieval options, metadata
filters, and ``retriever_resources`` in the Dify surface's chat answers, blocking and streaming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from support.dsl import dsl, edge, node
from support.servers import serve
from tidegate import Gateway
from tidegate.config import parse_config
from tidegate.config.workflows import WorkflowConfig
from tidegate.engine import RunLimits, Services, WorkflowRunner, compile_workflow, default_registry
from tidegate.engine.apps import WorkflowApps
from tidegate.errors import ConfigError
from tidegate.knowledge.node import _match, register_knowledge_node
from tidegate.surfaces.base import SurfaceApp
from tidegate.surfaces.dify import DifySurface

DOCS = {
    "faq/refunds.md": "---\ncategory: refunds\nupdated: 1735689600\n---\n# Refunds\n\n## Refund timing\nRefunds"
                      " reach your card within five business days.\n\n## Partial refunds\nDamaged returns get a"
                      " partial refund.\n",
    "faq/account.md": "---\ncategory: account\nregion: us\n---\n# Account\n\n## Locked account\nAfter five failed"
                      " sign-in attempts the account locks for thirty minutes.\n",
    "shipping/delays.md": "# Shipping delays\n\n## Customs\nInternational parcels may wait in customs for up to"
                          " ten days.\n\n## Late parcels\nLate parcels are investigated with the carrier.\n",
}  # fmt: skip
RESULT_METADATA_KEYS = {
    "_source", "position", "dataset_id", "dataset_name", "document_id", "document_name",
    "document_data_source_type", "segment_id", "retriever_from", "score", "segment_hit_count",
    "segment_word_count", "segment_position", "segment_index_node_hash", "doc_metadata",
}  # fmt: skip
RESOURCE_KEYS = {
    "position", "dataset_id", "dataset_name", "document_id", "document_name", "data_source_type", "segment_id",
    "retriever_from", "score", "hit_count", "word_count", "segment_position", "index_node_hash", "content", "page",
    "doc_metadata", "title",
}  # fmt: skip


@pytest.fixture
async def gateway(sim: Any, tmp_path: Path) -> AsyncIterator[Gateway]:
    for name, text in DOCS.items():
        path = tmp_path / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = parse_config({
        "prefix": "/ai",
        "models": {"sim-small": {"url": sim.url}},
        "embeddings": {"default": {"kind": "hash"}},
        "knowledge": {name: {"index": str(tmp_path / "index" / name), "source": str(tmp_path / "docs" / name)}
                      for name in ("faq", "shipping")},
    })  # fmt: skip
    async with Gateway(config) as gw:
        for base in gw.knowledge.values():
            await base.ingest(save=False)
        yield gw


def kr(query: list[str], datasets: list[str], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"query_variable_selector": query, "dataset_ids": datasets, "retrieval_mode": "multiple",
                            "multiple_retrieval_config": {"top_k": 3, "score_threshold": None}}  # fmt: skip
    data.update(extra)
    return data


def search_workflow(**data: Any) -> dict[str, Any]:
    """start(q) → knowledge-retrieval → end(result)."""
    return dsl(
        [node("start", "start", variables=[{"variable": "q", "label": "q", "type": "text-input", "required": False}]),
         node("kr", "knowledge-retrieval", "Search", **kr(["start", "q"], ["faq"]) | data),
         node("end", "end", outputs=[{"variable": "result", "value_selector": ["kr", "result"]}])],
        [edge("start", "kr"), edge("kr", "end")],
    )  # fmt: skip


def rag_chatflow(*, citations: bool = True) -> dict[str, Any]:
    """start → knowledge-retrieval(sys.query) → llm(context = result) → answer."""
    llm = {"model": {"name": "sim-small", "provider": "openai", "mode": "chat",
                     "completion_params": {"max_tokens": 5}},
           "context": {"enabled": True, "variable_selector": ["kr", "result"]},
           "prompt_template": [{"role": "system", "text": "Context:\n{{#context#}}"},
                               {"role": "user", "text": "{{#sys.query#}}"}]}  # fmt: skip
    return dsl(
        [node("start", "start", variables=[]),
         node("kr", "knowledge-retrieval", "Search", **kr(["sys", "query"], ["ds-faq", "ds-shipping"])),
         node("llm", "llm", "LLM", **llm),
         node("answer", "answer", "Answer", answer="{{#llm.text#}}")],
        [edge("start", "kr"), edge("kr", "llm"), edge("llm", "answer")],
        mode="advanced-chat", features={"retriever_resource": {"enabled": citations}},
    )  # fmt: skip


def runner(gateway: Gateway, data: dict[str, Any], datasets: dict[str, str] | None = None) -> WorkflowRunner:
    registry = default_registry()
    register_knowledge_node(registry, gateway)
    workflow = compile_workflow(data, registry=registry, datasets=datasets)
    return WorkflowRunner(workflow, services=Services(llm=gateway), limits=RunLimits(timeout=20))


async def test_result_items_have_difys_shape(gateway: Gateway) -> None:
    run = runner(gateway, search_workflow())
    async with run.start({"q": "when do refunds reach my card"}) as handle:
        events = [event async for event in handle]
    result = handle.result
    assert result is not None and result.status == "succeeded"
    items = result.outputs["result"]
    assert (items[0]["title"], items[0]["metadata"]["segment_position"]) == ("Refunds", 1)
    assert [i["metadata"]["position"] for i in items] == list(range(1, len(items) + 1))
    item = items[0]
    assert set(item) == {"metadata", "title", "content"}
    assert set(item["metadata"]) == RESULT_METADATA_KEYS
    assert item["content"] == "Refunds reach your card within five business days."
    meta = item["metadata"]
    assert (meta["_source"], meta["position"], meta["dataset_id"], meta["dataset_name"]) == ("knowledge", 1, "faq", "faq")
    assert (meta["document_id"], meta["document_name"], meta["retriever_from"]) == ("refunds.md", "Refunds", "workflow")
    assert meta["doc_metadata"]["category"] == "refunds" and 0.35 <= meta["score"] <= 1.0
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "kr")
    assert finished.inputs == {"query": "when do refunds reach my card"}
    assert finished.process_data == {"retrieval_mode": "multiple", "datasets": ["faq"]}
    resources = result.retriever_resources
    assert [set(r) for r in resources] == [RESOURCE_KEYS] * len(items)
    assert [r["segment_id"] for r in resources] == [i["metadata"]["segment_id"] for i in items]


async def test_datasets_map_dsl_ids_to_bases_and_merge_by_score(gateway: Gateway) -> None:
    data = search_workflow(dataset_ids=["uuid-faq", "uuid-ship"],
                           multiple_retrieval_config={"top_k": 4, "score_threshold": 0.0})  # fmt: skip
    result = await runner(gateway, data, {"uuid-faq": "faq", "uuid-ship": "shipping"}).run_blocking(
        {"q": "parcels wait in customs"}
    )
    items = result.outputs["result"]
    assert (items[0]["metadata"]["dataset_id"], items[0]["metadata"]["dataset_name"]) == ("uuid-ship", "shipping")
    assert {i["metadata"]["dataset_id"] for i in items} == {"uuid-faq", "uuid-ship"}  # 5 chunks in all, best 4
    assert [i["metadata"]["position"] for i in items] == [1, 2, 3, 4]
    scores = [i["metadata"]["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"top_k": 1, "score_threshold": 0.0}, 1),
        ({"top_k": 10, "score_threshold": 0.0}, 3),  # every chunk of the base
        ({"top_k": 10, "score_threshold": 0.99}, 0),
    ],
)
async def test_top_k_and_score_threshold(gateway: Gateway, config: dict[str, Any], expected: int) -> None:
    result = await runner(gateway, search_workflow(multiple_retrieval_config=config)).run_blocking({"q": "refund"})
    assert len(result.outputs["result"]) == expected


async def test_weighted_score_sets_the_hybrid_blend(gateway: Gateway) -> None:
    weights = {"vector_setting": {"vector_weight": 0.0}, "keyword_setting": {"keyword_weight": 1.0}}
    config = {"top_k": 2, "score_threshold": 0.0, "reranking_enable": True, "reranking_mode": "weighted_score",
              "weights": weights}  # fmt: skip
    keyword_only = await runner(gateway, search_workflow(multiple_retrieval_config=config)).run_blocking({"q": "locks"})
    # Keyword scores are scaled so the best is 1: all weight on keywords makes the top score exactly 1.
    assert keyword_only.outputs["result"][0]["metadata"]["score"] == pytest.approx(1.0)
    plain = await runner(gateway, search_workflow(multiple_retrieval_config={**config, "reranking_enable": False})
                         ).run_blocking({"q": "locks"})  # fmt: skip
    assert plain.outputs["result"][0]["metadata"]["score"] < 0.99


async def test_single_mode_answers_from_the_best_dataset(gateway: Gateway) -> None:
    data = search_workflow(dataset_ids=["faq", "shipping"], retrieval_mode="single", multiple_retrieval_config=None)
    run = runner(gateway, data)
    async with run.start({"q": "international parcels customs"}) as handle:
        events = [event async for event in handle]
    assert {i["metadata"]["dataset_name"] for i in handle.result.outputs["result"]} == {"shipping"}  # type: ignore[union-attr]
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "kr")
    assert finished.process_data["chosen_dataset"] == "shipping"  # type: ignore[index]


async def test_manual_metadata_filters(gateway: Gateway) -> None:
    def filtered(logical: str, *conditions: tuple[str, str, Any]) -> dict[str, Any]:
        rows = [{"name": n, "comparison_operator": op, "value": v} for n, op, v in conditions]
        return search_workflow(multiple_retrieval_config={"top_k": 10, "score_threshold": 0.0},
                               metadata_filtering_mode="manual",
                               metadata_filtering_conditions={"logical_operator": logical, "conditions": rows})  # fmt: skip

    async def titles(data: dict[str, Any], q: str = "refund account locks") -> set[str]:
        result = await runner(gateway, data).run_blocking({"q": q})
        assert result.status == "succeeded", result.error
        return {item["title"] for item in result.outputs["result"]}

    assert await titles(filtered("and", ("category", "is", "{{#start.q#}}")), q="account") == {"Account"}
    assert await titles(filtered("and", ("category", "is", "shipping"))) == set()
    assert await titles(filtered("or", ("region", "is", "us"), ("updated", "after", "2024-12-31"))) == {"Account", "Refunds"}
    assert await titles(filtered("and", ("region", "empty", None))) == {"Refunds"}
    assert await titles(filtered("and", ("updated", ">", 1735689600))) == set()
    automatic = search_workflow(metadata_filtering_mode="automatic")
    run = runner(gateway, automatic)
    async with run.start({"q": "refund"}) as handle:
        events = [event async for event in handle]
    finished = next(e for e in events if e.kind == "node_finished" and e.node_id == "kr")
    assert "without filters" in finished.process_data["metadata_filtering"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("op", "actual", "expected", "match"),
    [
        ("contains", "refunds", "fund", True), ("contains", ["a", "bc"], "b", True), ("not contains", None, "x", True),
        ("start with", "us-east", "us", True), ("end with", "us-east", "west", False), ("is", 5, "5", True),
        ("is not", "a", "a", False), ("empty", "", None, True), ("not empty", [], None, False),
        ("=", "2.0", 2, True), ("≠", 1, 2, True), (">", 3, "2", True), ("<", "x", 2, False), ("≥", 2, 2, True),
        ("≤", 3, 2, False), ("before", 0, "1970-01-02", True), ("after", "2025-01-01T00:00:00+00:00", 1735689599, True),
        ("is", None, "x", False), ("≠", None, 1, True),
    ],
)  # fmt: skip
def test_comparison_operators(op: str, actual: Any, expected: Any, match: bool) -> None:
    assert _match(op, actual, expected) is match


async def test_bad_node_data_and_unknown_datasets_fail_at_load(gateway: Gateway, tmp_path: Path) -> None:
    data = search_workflow(dataset_ids=["ds-1", "ghost"], multiple_retrieval_config={"top_k": 0},
                           metadata_filtering_mode="manual",
                           metadata_filtering_conditions={"conditions": [{"name": "a", "comparison_operator": "~"}]})  # fmt: skip
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    registry = default_registry()
    register_knowledge_node(registry, gateway)
    with pytest.raises(ConfigError) as info:
        WorkflowApps({"bad": WorkflowConfig(file=str(path), datasets={"ds-1": "nope"})}, registry=registry)
    where = "in node `kr` (Search)"
    assert info.value.issues == [
        "Expected a dataset id mapped to a knowledge base by the workflow's `datasets:` or naming one (`faq`,"
        f" `shipping`), got `ds-1` (mapped to `nope` by `datasets:`) - at `$.workflow.graph.nodes[1].data.dataset_ids[0]` {where} ({path})",
        "Expected a dataset id mapped to a knowledge base by the workflow's `datasets:` or naming one (`faq`,"
        f" `shipping`), got `ghost` - at `$.workflow.graph.nodes[1].data.dataset_ids[1]` {where} ({path})",
        f"Expected `top_k` >= 1, got `0` - at `$.workflow.graph.nodes[1].data.multiple_retrieval_config.top_k` {where} ({path})",
        "Expected a comparison operator (`<`, `=`, `>`, `after`, `before`, `contains`, `empty`, `end with`, `is`,"
        " `is not`, `not contains`, `not empty`, `start with`, `≠`, `≤`, `≥`), got `~` - at"
        f" `$.workflow.graph.nodes[1].data.metadata_filtering_conditions.conditions[0].comparison_operator` {where} ({path})",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="needs knowledge bases"):  # without the registration: the extension point
        compile_workflow(search_workflow())


async def test_query_errors_and_search_failures_fail_the_node(gateway: Gateway) -> None:
    run = runner(gateway, search_workflow())
    empty = await run.run_blocking({"q": "  "})
    assert (empty.status, empty.error) == ("failed", "node `kr` (Search) failed: Query is required.")
    await gateway.knowledge["faq"].close()
    closed = await run.run_blocking({"q": "refund"})
    assert closed.status == "failed" and "Knowledge base `faq` is closed" in (closed.error or "")


# -- through the Dify surface -----------------------------------------------------------------------


@pytest.fixture
async def dify(gateway: Gateway, tmp_path: Path) -> AsyncIterator[str]:
    files = {}
    for name, citations in (("rag", True), ("quiet", False)):
        files[name] = tmp_path / f"{name}.yml"
        files[name].write_text(yaml.safe_dump(rag_chatflow(citations=citations)), encoding="utf-8")
    datasets = {"ds-faq": "faq", "ds-shipping": "shipping"}
    workflows = {name: WorkflowConfig(file=str(path), api_keys=[f"app-{name}"], datasets=datasets)
                 for name, path in files.items()}  # fmt: skip
    registry = default_registry()
    register_knowledge_node(registry, gateway)
    apps = WorkflowApps(workflows, llm=gateway, registry=registry, metrics=gateway.metrics.registry)
    surface = DifySurface(gateway, apps)
    await apps.start()
    try:
        async with serve(SurfaceApp(gateway, [surface], fallback=surface), lifespan="off") as url:
            yield url + "/ai/v1"
    finally:
        await apps.stop()


async def chat(url: str, key: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as client, client.post(url + "/chat-messages", json=body) as resp:
        assert resp.status == 200, await resp.text()
        if body.get("response_mode") != "streaming":
            return await resp.json()
        raw = await resp.read()
    return [json.loads(block[6:]) for block in raw.decode().split("\n\n") if block.startswith("data: ")]


async def test_chatflow_cites_retrieved_knowledge_blocking_and_streaming(dify: str) -> None:
    question = {"query": "when do refunds reach my card", "user": "ada", "inputs": {}}
    blocking = await chat(dify, "app-rag", {**question, "response_mode": "blocking"})
    cited = blocking["metadata"]["retriever_resources"]
    assert [(r["position"], r["dataset_id"], r["dataset_name"], r["document_name"]) for r in cited] == [
        (1, "ds-faq", "faq", "Refunds"), (2, "ds-faq", "faq", "Refunds"),
    ]
    assert set(cited[0]) == RESOURCE_KEYS and cited[0]["content"].startswith("Refunds reach your card")
    events = await chat(dify, "app-rag", {**question, "response_mode": "streaming",
                                          "conversation_id": blocking["conversation_id"]})  # fmt: skip
    end = events[-1]
    assert end["event"] == "message_end" and end["metadata"]["retriever_resources"] == cited
    kr_done = next(e for e in events if e["event"] == "node_finished" and e["data"]["node_id"] == "kr")
    assert kr_done["data"]["outputs"]["result"][0]["content"] == cited[0]["content"]
    llm_done = next(e for e in events if e["event"] == "node_finished" and e["data"]["node_id"] == "llm")
    assert "Refunds reach your card" in llm_done["data"]["process_data"]["prompts"][0]["content"]
    # The conversation's messages keep their citations.
    params = {"conversation_id": blocking["conversation_id"], "user": "ada"}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer app-rag"}) as client:
        async with client.get(dify + "/messages", params=params) as resp:
            messages = (await resp.json())["data"]
    assert [m["retriever_resources"] for m in messages] == [cited, cited]


async def test_citations_follow_the_retriever_resource_feature(dify: str) -> None:
    body = {"query": "international parcels customs", "user": "bo", "inputs": {}}
    off = await chat(dify, "app-quiet", {**body, "response_mode": "blocking"})
    assert off["metadata"]["retriever_resources"] == []
    events = await chat(dify, "app-quiet", {**body, "response_mode": "streaming"})
    assert events[-1]["metadata"]["retriever_resources"] == []
    on = await chat(dify, "app-rag", {**body, "response_mode": "blocking"})
    assert on["metadata"]["retriever_resources"][0]["dataset_id"] == "ds-shipping"
