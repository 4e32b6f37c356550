"""KnowledgeBase behaviour with the hash embedder: ingest, search, filters, changes, persistence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from tidegate._concurrency import WorkerPool
from tidegate.config.knowledge import HybridConfig, KnowledgeConfig
from tidegate.embeddings import HashEmbedder
from tidegate.errors import ConfigError, UsageError
from tidegate.knowledge import Document, KnowledgeBase, build_knowledge_base
from tidegate.knowledge.store import read_manifest

FILES = {
    "refunds.md": "---\ncategory: refunds\n---\n# Refunds\n\n## Refund timing\nRefunds reach your card"
                  " within five business days.\n\n## Partial refunds\nDamaged returns get a partial refund.\n",
    "shipping.md": "---\ncategory: shipping\n---\n# Shipping\n\n## Late parcels\nParcels late by a week"
                   " are investigated with the carrier.\n",
    "errors.txt": "Error code E42 means the coffee machine water tank is missing.\n",
}  # fmt: skip


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(2, name="test-kb")
    yield workers
    workers.shutdown()


@pytest.fixture
async def embedder(pool: WorkerPool) -> AsyncIterator[HashEmbedder]:
    async with HashEmbedder("default", pool=pool, dim=256) as emb:
        yield emb


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    source = tmp_path / "docs"
    source.mkdir()
    for name, text in FILES.items():
        (source / name).write_text(text)
    return source


def _kb(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool, **options: object) -> KnowledgeBase:
    cfg = msgspec.convert({"index": str(tmp_path / "index"), "source": str(corpus), **options}, KnowledgeConfig)
    return build_knowledge_base("kb", cfg, embedder, pool)


async def test_ingest_then_search_with_metadata(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        report = await kb.ingest()
        assert (report.files, report.changed, report.chunks, report.saved) == (3, 3, 4, True)
        hits = await kb.search("partial refund for damaged returns", top_k=2, score_threshold=0.0)
        assert hits[0].doc_id == "refunds.md" and hits[0].section == "Partial refunds"
        assert hits[0].title == "Refunds" and hits[0].metadata["category"] == "refunds"
        assert hits[0].score >= hits[1].score
        assert len(await kb.search("refund", top_k=1, score_threshold=-1.0)) == 1
        assert await kb.search("partial refund", score_threshold=0.99) == []
        assert await kb.search("   ") == []


async def test_filters_restrict_hits(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        await kb.ingest()
        hits = await kb.search("refund", filters={"category": "shipping"}, score_threshold=-1.0)
        assert [h.doc_id for h in hits] == ["shipping.md"]
        hits = await kb.search("refund", filters={"category": ["shipping", "refunds"]}, score_threshold=-1.0)
        assert {h.doc_id for h in hits} == {"refunds.md", "shipping.md"}
        hits = await kb.search("refund", filters={"doc_id": "errors.txt"}, score_threshold=-1.0)
        assert [h.doc_id for h in hits] == ["errors.txt"]


async def test_hybrid_finds_exact_tokens(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool, hybrid={"vector_weight": 0.5, "keyword_weight": 0.5}) as kb:
        await kb.ingest()
        hits = await kb.search("what is E42", score_threshold=0.0)
        assert hits[0].doc_id == "errors.txt"
        assert hits[0].keyword_score == 1.0 and hits[0].vector_score is not None
        # A per-call override turns the keyword half off.
        plain = await kb.search("what is E42", score_threshold=-1.0, hybrid=HybridConfig(1.0, 0.0))
        assert all(h.keyword_score is None for h in plain)


async def test_upsert_replaces_and_delete_removes(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        await kb.ingest()
        before = len(kb)
        added = await kb.upsert([Document("note", "Gift wrap costs three euros.", title="Gifts")])
        assert added == 1 and len(kb) == before + 1
        assert await kb.upsert([Document("note", "Gift wrap costs three euros.", title="Gifts")]) == 0
        await kb.upsert([Document("note", "Gift wrapping is free in December.", title="Gifts")])
        assert len(kb) == before + 1
        hits = await kb.search("gift wrapping free", score_threshold=-1.0, filters={"doc_id": "note"})
        assert [h.content for h in hits] == ["Gift wrapping is free in December."]
        assert await kb.delete(["note", "missing"]) == 1
        assert len(kb) == before and "note" not in kb.doc_ids


async def test_saved_base_reloads_and_view_is_writable_after_copy(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool, exact_below=0) as kb:
        await kb.ingest()
        await kb.delete(["errors.txt"])  # a removal inside the saved file
        assert await kb.save()
        assert not await kb.save()  # nothing changed
        expected = [(h.doc_id, round(h.score, 4)) for h in await kb.search("late parcel", score_threshold=-1.0)]
    async with _kb(tmp_path, corpus, embedder, pool, view=True, exact_below=0) as viewed:
        assert len(viewed) == 3 and sorted(viewed.doc_ids) == ["refunds.md", "shipping.md"]
        got = [(h.doc_id, round(h.score, 4)) for h in await viewed.search("late parcel", score_threshold=-1.0)]
        assert got == expected
        await viewed.upsert([Document("new", "Brand new document about parcels.")])
        assert len(viewed) == 4


async def test_ingest_is_resumable_and_mirrors_the_source(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        await kb.ingest()
    (corpus / "shipping.md").write_text("# Shipping\n\nNew text about express delivery.\n")
    (corpus / "errors.txt").unlink()
    (corpus / "extra.md").write_text("# Extra\n\nWarranty covers two years.\n")
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        report = await kb.ingest()
        assert (report.files, report.skipped, report.changed, report.removed) == (3, 1, 2, 1)
        assert sorted(kb.doc_ids) == ["extra.md", "refunds.md", "shipping.md"]
        hits = await kb.search("express delivery", top_k=1, score_threshold=-1.0)
        assert hits[0].content == "New text about express delivery."
        again = await kb.ingest()
        assert (again.skipped, again.chunks, again.saved) == (3, 0, False)


async def test_jsonl_lines_that_disappear_are_deleted(tmp_path: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "faq.jsonl").write_text('{"id": 1, "content": "one"}\n{"id": 2, "content": "two"}\n')
    cfg = KnowledgeConfig(index=str(tmp_path / "i"), source=str(source))
    async with build_knowledge_base("kb", cfg, embedder, pool) as kb:
        await kb.ingest()
        assert sorted(kb.doc_ids) == ["faq.jsonl#1", "faq.jsonl#2"]
        (source / "faq.jsonl").write_text('{"id": 2, "content": "two"}\n')
        await kb.ingest()
        assert kb.doc_ids == ["faq.jsonl#2"]


async def test_an_index_from_another_embedder_is_refused(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        await kb.ingest()
    async with HashEmbedder("other", pool=pool, dim=128) as other:
        stranger = _kb(tmp_path, corpus, other, pool)
        with pytest.raises(ConfigError, match=r"built with `hash:256`, dim 256.*--rebuild"):
            await stranger.open()
    with pytest.raises(ConfigError, match="dtype i8"):
        await _kb(tmp_path, corpus, embedder, pool, dtype="i8").open()


async def test_searches_run_while_ingest_writes(tmp_path: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    source = tmp_path / "many"
    source.mkdir()
    for i in range(60):
        (source / f"doc{i}.md").write_text(f"# Doc {i}\n\nParagraph {i} about topic {i % 7}.\n")
    cfg = KnowledgeConfig(index=str(tmp_path / "i"), source=str(source))
    async with build_knowledge_base("kb", cfg, embedder, pool) as kb:
        ingest = asyncio.create_task(kb.ingest(checkpoint_every=10))
        seen = 0
        while not ingest.done():
            hits = await kb.search("topic 3", score_threshold=-1.0)
            assert all(h.content for h in hits)
            seen += 1
            await asyncio.sleep(0)
        report = await ingest
        assert report.chunks == 60 and len(kb) == 60 and seen > 1
        manifest = read_manifest(kb.folder)
        assert manifest is not None and manifest.count == 60
        assert sorted(p.name for p in kb.folder.iterdir()) == [
            f"index-{manifest.generation:06d}.usearch", "manifest.json",
            f"store-{manifest.generation:06d}.msgpack",
        ]  # fmt: skip


async def test_lifecycle_errors(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    kb = _kb(tmp_path, corpus, embedder, pool)
    with pytest.raises(UsageError, match="open"):
        await kb.search("x")
    await kb.open()
    with pytest.raises(UsageError):
        await kb.open()
    await kb.close()
    with pytest.raises(UsageError):
        await kb.upsert([Document("a", "b")])


async def test_hits_convert_to_dify_shapes(tmp_path: Path, corpus: Path, embedder: HashEmbedder, pool: WorkerPool) -> None:
    from tidegate.knowledge.dify import retrieval_results, retriever_resources

    async with _kb(tmp_path, corpus, embedder, pool) as kb:
        await kb.ingest()
        hits = await kb.search("partial refund", top_k=2, score_threshold=-1.0)
    results = retrieval_results(hits, dataset_id="ds-1", dataset_name="kb")
    first = results[0]
    assert first["content"] == hits[0].content and first["title"] == "Refunds"
    meta = first["metadata"]
    assert meta["_source"] == "knowledge" and meta["position"] == 1 and meta["score"] == hits[0].score
    assert meta["dataset_id"] == "ds-1" and meta["document_id"] == "refunds.md"
    assert meta["doc_metadata"]["category"] == "refunds" and meta["segment_position"] == 2
    resources = retriever_resources([*results, {"metadata": {"_source": "other"}}])
    assert len(resources) == 2
    assert resources[0]["document_name"] == "Refunds" and resources[0]["content"] == hits[0].content
