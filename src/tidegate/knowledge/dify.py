"""Hits in the shapes Dify uses, so exported workflows and Dify clients see what they expect.

The knowledge-retrieval node outputs ``result`` items (``content``, ``title``, ``metadata`` with
``_source: knowledge``, dataset/document names and the score); an answer's ``message_end`` event
carries ``retriever_resources`` built from those items. Segment ids are our chunk keys prefixed
with the base name, stable until the document is re-ingested.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from .base import Hit

__all__ = ["retrieval_results", "retriever_resources"]


def retrieval_results(hits: list[Hit], *, dataset_id: str, dataset_name: str) -> list[dict[str, Any]]:
    """The knowledge-retrieval node's ``result`` list, best hit first (``position`` from 1)."""
    items = []
    for position, hit in enumerate(hits, start=1):
        doc_metadata = {k: v for k, v in hit.metadata.items() if k not in ("position", "section")}
        if isinstance(doc_metadata.get("source"), str):  # clients see the file name, not our paths
            doc_metadata["source"] = PurePath(doc_metadata["source"]).name
        items.append({
            "metadata": {
                "_source": "knowledge",
                "position": position,
                "dataset_id": dataset_id,
                "dataset_name": dataset_name,
                "document_id": hit.doc_id,
                "document_name": hit.title or hit.doc_id,
                "document_data_source_type": "upload_file",
                "segment_id": f"{dataset_name}:{hit.key}",
                "retriever_from": "workflow",
                "score": hit.score,
                "segment_hit_count": 1,
                "segment_word_count": len(hit.content.split()),
                "segment_position": int(hit.metadata.get("position", 0)) + 1,
                "segment_index_node_hash": None,
                "doc_metadata": doc_metadata,
            },
            "title": hit.title or hit.doc_id,
            "content": hit.content,
        })  # fmt: skip
    return items


def retriever_resources(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``message_end.metadata.retriever_resources`` from ``result`` items (ours or a node's)."""
    resources = []
    for item in results:
        meta = item.get("metadata") or {}
        if meta.get("_source") != "knowledge":
            continue
        resources.append({
            "position": meta.get("position"),
            "dataset_id": meta.get("dataset_id"),
            "dataset_name": meta.get("dataset_name"),
            "document_id": meta.get("document_id"),
            "document_name": meta.get("document_name"),
            "data_source_type": meta.get("document_data_source_type"),
            "segment_id": meta.get("segment_id"),
            "retriever_from": meta.get("retriever_from"),
            "score": meta.get("score"),
            "hit_count": meta.get("segment_hit_count"),
            "word_count": meta.get("segment_word_count"),
            "segment_position": meta.get("segment_position"),
            "index_node_hash": meta.get("segment_index_node_hash"),
            "content": item.get("content"),
            "page": None,
            "doc_metadata": meta.get("doc_metadata"),
            "title": item.get("title"),
        })  # fmt: skip
    return resources
