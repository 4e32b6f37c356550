"""The workflow ``knowledge-retrieval`` node: Dify's node data, answered by our knowledge bases.

Dify's node names datasets by id; each app's ``datasets:`` config maps those ids to the Gateway's
knowledge bases (an unmapped id is taken as a base name, as model names are). Everything is
resolved when the workflow loads, so a DSL naming an unknown dataset fails at load with the node
and the id, never at the first request.

``multiple`` mode searches every dataset concurrently, merges the hits by score and keeps
``top_k``; with ``reranking_mode: weighted_score`` the vector/keyword weights become the bases'
hybrid blend for the call (there is no rerank model here, so ``reranking_model`` falls back to
the score merge). ``single`` mode answers from one dataset: Dify asks a model to pick it, we pick
the dataset whose best hit scores highest, which needs no model round trip and is deterministic.
Manual metadata filtering evaluates Dify's conditions on document metadata (``is`` under ``and``
is pushed into the base's own filter; the rest over-fetch and filter); ``automatic`` mode would
need a model to write the filters and searches unfiltered, saying so in ``process_data``.

The output ``result`` holds Dify-shaped items; the same hits are recorded on the run as
``retriever_resources`` so a chatflow's ``message_end`` can cite them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import msgspec

from ..config.knowledge import HybridConfig
from ..dsl.spec import NodeSpec
from ..engine.nodes.base import Compiler, Node, NodeContext, NodeFailure, NodeResult
from ..engine.nodes.registry import NodeRegistry
from ..engine.template import Template, to_text
from ..errors import TidegateError
from .dify import retrieval_results, retriever_resources

if TYPE_CHECKING:
    from .base import Hit, KnowledgeBase

__all__ = ["KnowledgeRetrievalNode", "register_knowledge_node"]

OPERATORS = frozenset({
    "contains", "not contains", "start with", "end with", "is", "is not", "empty", "not empty",
    "=", "≠", ">", "<", "≥", "≤", "before", "after",
})  # fmt: skip
_OVERFETCH = 4
"""Post-filtered searches fetch this many times ``top_k`` (at least 20) before filtering."""


class _VectorSetting(msgspec.Struct):
    vector_weight: float = 1.0


class _KeywordSetting(msgspec.Struct):
    keyword_weight: float = 0.0


class _Weights(msgspec.Struct):
    vector_setting: _VectorSetting = msgspec.field(default_factory=_VectorSetting)
    keyword_setting: _KeywordSetting = msgspec.field(default_factory=_KeywordSetting)


class _Multiple(msgspec.Struct):
    top_k: int = 4
    score_threshold: float | None = None
    reranking_enable: bool = True
    reranking_mode: str = "reranking_model"
    weights: _Weights | None = None


class _Condition(msgspec.Struct):
    name: str
    comparison_operator: str
    value: Any = None


class _Filtering(msgspec.Struct):
    logical_operator: Literal["and", "or"] | None = "and"
    conditions: list[_Condition] | None = None


class _Data(msgspec.Struct):
    query_variable_selector: list[str] | None = None
    dataset_ids: list[str] = msgspec.field(default_factory=list)
    retrieval_mode: Literal["single", "multiple"] = "multiple"
    multiple_retrieval_config: _Multiple | None = None
    metadata_filtering_mode: Literal["disabled", "automatic", "manual"] | None = "disabled"
    metadata_filtering_conditions: _Filtering | None = None


class _HasKnowledge(Protocol):
    @property
    def knowledge(self) -> Mapping[str, Any]: ...


class _Filter:
    """Dify's manual metadata conditions, compiled: what the base can filter, what we check."""

    __slots__ = ("any_of", "conditions", "pushdown")

    def __init__(self, filtering: _Filtering) -> None:
        self.any_of = filtering.logical_operator == "or"
        self.conditions: list[tuple[str, str, Template | Any]] = [
            (c.name, c.comparison_operator, Template(c.value) if isinstance(c.value, str) else c.value)
            for c in filtering.conditions or ()
        ]
        self.pushdown = not self.any_of and all(op == "is" for _, op, _ in self.conditions)

    def bind(self, ctx: NodeContext) -> list[tuple[str, str, Any]]:
        return [(name, op, value.render(ctx.pool) if isinstance(value, Template) else value)
                for name, op, value in self.conditions]  # fmt: skip

    def accepts(self, hit: Hit, bound: list[tuple[str, str, Any]]) -> bool:
        results = (_match(op, _field(hit, name), value) for name, op, value in bound)
        return any(results) if self.any_of else all(results)


_BASE_FIELDS = {"document_id": "doc_id", "document_name": "title"}
"""Dify's names for the document fields the base filters by under its own names."""


def _forms(value: Any) -> list[Any]:
    """The typed values an ``is`` condition's text may equal in metadata (the base compares
    exactly; ``_match`` compares text)."""
    text = to_text(value)
    forms: list[Any] = [text]
    number = _number(text)
    if number is not None:
        forms.append(int(number) if number.is_integer() else number)
    if text in ("true", "false"):
        forms.append(text == "true")
    return forms


def _field(hit: Hit, name: str) -> Any:
    if name in ("doc_id", "document_id"):
        return hit.doc_id
    if name in ("title", "document_name"):
        return hit.title
    return hit.metadata.get(name)


def _match(op: str, actual: Any, expected: Any) -> bool:
    """One Dify comparison; a document without the field fails every test but the negative ones."""
    if op in ("empty", "not empty"):
        empty = actual is None or actual == "" or actual == [] or actual == {}
        return empty if op == "empty" else not empty
    if actual is None:
        return op in ("not contains", "is not", "≠")
    want = to_text(expected)
    if op in ("contains", "not contains"):
        if isinstance(actual, list):
            found = any(want == to_text(v) or want in to_text(v) for v in actual)
        else:
            found = want in to_text(actual)
        return found if op == "contains" else not found
    if op in ("is", "is not"):
        same = want in (to_text(v) for v in actual) if isinstance(actual, list) else to_text(actual) == want
        return same if op == "is" else not same
    if op == "start with":
        return to_text(actual).startswith(want)
    if op == "end with":
        return to_text(actual).endswith(want)
    convert = _timestamp if op in ("before", "after") else _number
    left, right = convert(actual), convert(expected)
    if left is None or right is None:
        return op == "≠"
    return {"=": left == right, "≠": left != right, ">": left > right, "<": left < right,
            "≥": left >= right, "≤": left <= right, "before": left < right, "after": left > right}[op]  # fmt: skip


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _timestamp(value: Any) -> float | None:
    """Dify stores times as Unix seconds; ISO dates are accepted too (naive ones are UTC)."""
    number = _number(value)
    if number is not None:
        return number
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class KnowledgeRetrievalNode(Node):
    type = "knowledge-retrieval"
    bases: ClassVar[Mapping[str, KnowledgeBase]] = {}
    """The Gateway's knowledge bases, bound by :func:`register_knowledge_node`."""

    def __init__(self, spec: NodeSpec, compiler: Compiler) -> None:
        super().__init__(spec, compiler)
        data = compiler.convert(spec, _Data) or _Data()
        self.query = tuple(data.query_variable_selector or ())
        if len(self.query) < 2:
            compiler.problem(spec, f"Expected a query variable selector like `[sys, query]`, got `{list(self.query)}`",
                             "query_variable_selector")  # fmt: skip
        self.datasets = self._datasets(spec, compiler, data.dataset_ids)
        self.mode = data.retrieval_mode
        config = data.multiple_retrieval_config or _Multiple()
        if self.mode == "multiple" and config.top_k < 1:
            compiler.problem(spec, f"Expected `top_k` >= 1, got `{config.top_k}`", "multiple_retrieval_config.top_k")
        self.top_k: int | None = config.top_k if self.mode == "multiple" else None
        self.threshold = config.score_threshold if self.mode == "multiple" else None
        self.hybrid: HybridConfig | None = None
        weights = config.weights
        if self.mode == "multiple" and config.reranking_enable and config.reranking_mode == "weighted_score" and weights:
            vector, keyword = weights.vector_setting.vector_weight, weights.keyword_setting.keyword_weight
            if vector < 0 or keyword < 0 or vector + keyword <= 0:
                compiler.problem(spec, f"Expected non-negative weights with a positive sum, got vector `{vector}` and"
                                 f" keyword `{keyword}`", "multiple_retrieval_config.weights")  # fmt: skip
            else:
                self.hybrid = HybridConfig(vector_weight=vector, keyword_weight=keyword)
        self.filter: _Filter | None = None
        self.filter_note: str | None = None
        if data.metadata_filtering_mode == "manual" and data.metadata_filtering_conditions is not None:
            for index, condition in enumerate(data.metadata_filtering_conditions.conditions or ()):
                if condition.comparison_operator not in OPERATORS:
                    known = ", ".join(f"`{op}`" for op in sorted(OPERATORS))
                    compiler.problem(spec, f"Expected a comparison operator ({known}), got `{condition.comparison_operator}`",
                                     f"metadata_filtering_conditions.conditions[{index}].comparison_operator")  # fmt: skip
            if data.metadata_filtering_conditions.conditions:
                self.filter = _Filter(data.metadata_filtering_conditions)
        elif data.metadata_filtering_mode == "automatic":
            self.filter_note = "automatic metadata filtering needs a model to write filters; searched without filters"

    def _datasets(self, spec: NodeSpec, compiler: Compiler, ids: list[str]) -> list[tuple[str, str]]:
        """(DSL dataset id, knowledge base name) pairs, each checked against the Gateway's bases."""
        if not ids:
            compiler.problem(spec, "Expected at least one dataset in `dataset_ids`, got none", "dataset_ids")
        mapping = compiler.datasets or {}
        resolved: list[tuple[str, str]] = []
        for index, dataset_id in enumerate(ids):
            name = mapping.get(dataset_id, dataset_id)
            if name not in self.bases:
                known = ", ".join(f"`{n}`" for n in sorted(self.bases)) or "none configured"
                via = f" (mapped to `{name}` by `datasets:`)" if name != dataset_id else ""
                compiler.problem(spec, f"Expected a dataset id mapped to a knowledge base by the workflow's `datasets:`"
                                 f" or naming one ({known}), got `{dataset_id}`{via}", f"dataset_ids[{index}]")  # fmt: skip
                continue
            resolved.append((dataset_id, name))
        return resolved

    async def run(self, ctx: NodeContext) -> NodeResult:
        query = ctx.pool.value(self.query)
        if query is not None and not isinstance(query, str):
            raise NodeFailure("Query variable is not string type.", error_type="ValueError")
        if not query or not query.strip():
            raise NodeFailure("Query is required.", error_type="ValueError")
        bound = self.filter.bind(ctx) if self.filter is not None else None
        try:
            found = await self._search_all(query, bound)
        except TidegateError as exc:
            raise NodeFailure(exc.message, error_type=type(exc).__name__) from None
        if self.mode == "single":
            chosen = max(found, key=lambda item: item[2][0].score if item[2] else -math.inf)
            found = [chosen] if chosen[2] else []
        items: list[dict[str, Any]] = []
        for dataset_id, name, hits in found:
            items.extend(retrieval_results(hits, dataset_id=dataset_id, dataset_name=name))
        items.sort(key=lambda item: item["metadata"]["score"], reverse=True)
        if self.top_k is not None:
            del items[self.top_k :]
        for position, item in enumerate(items, start=1):
            item["metadata"]["position"] = position
        self._cite(ctx, items)
        process: dict[str, Any] = {"retrieval_mode": self.mode, "datasets": [name for _, name in self.datasets]}
        if self.mode == "single":
            process["chosen_dataset"] = found[0][1] if found else None
        if self.filter_note:
            process["metadata_filtering"] = self.filter_note
        return NodeResult({"result": items}, inputs={"query": query}, process_data=process)

    async def _search_all(self, query: str, bound: list[tuple[str, str, Any]] | None) -> list[tuple[str, str, list[Hit]]]:
        if len(self.datasets) == 1:
            dataset_id, name = self.datasets[0]
            return [(dataset_id, name, await self._search(name, query, bound))]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [(dataset_id, name, group.create_task(self._search(name, query, bound)))
                         for dataset_id, name in self.datasets]  # fmt: skip
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            raise first from None
        return [(dataset_id, name, task.result()) for dataset_id, name, task in tasks]

    async def _search(self, name: str, query: str, bound: list[tuple[str, str, Any]] | None) -> list[Hit]:
        base = self.bases[name]
        top_k = self.top_k if self.top_k is not None else base.cfg.top_k
        options: dict[str, Any] = {"score_threshold": self.threshold, "hybrid": self.hybrid}
        if bound is None or self.filter is None:
            return await base.search(query, top_k=top_k, **options)
        if self.filter.pushdown:
            filters = {_BASE_FIELDS.get(field, field): _forms(value) for field, _, value in bound}
            return await base.search(query, top_k=top_k, filters=filters, **options)
        hits = await base.search(query, top_k=max(top_k * _OVERFETCH, 20), **options)
        return [hit for hit in hits if self.filter.accepts(hit, bound)][:top_k]

    @staticmethod
    def _cite(ctx: NodeContext, items: list[dict[str, Any]]) -> None:
        """Record the hits on the run (once per segment) for ``message_end.retriever_resources``."""
        cited = ctx.run.retriever_resources
        seen = {resource["segment_id"] for resource in cited}
        for resource in retriever_resources(items):
            if resource["segment_id"] not in seen:
                seen.add(resource["segment_id"])
                cited.append(resource)
        for position, resource in enumerate(cited, start=1):
            resource["position"] = position


def register_knowledge_node(registry: NodeRegistry, gateway: _HasKnowledge) -> type[KnowledgeRetrievalNode]:
    """Register a ``knowledge-retrieval`` node type bound to ``gateway.knowledge`` (its bases)."""
    bound = type("KnowledgeRetrievalNode", (KnowledgeRetrievalNode,), {"bases": gateway.knowledge,
                                                                       "__module__": __name__})  # fmt: skip
    registry.register(bound)
    return bound
