"""A knowledge base: chunks of documents, their vectors, and search over both.

State changes (upsert, delete, save) take one asyncio lock, so they run one at a time; searches
never wait for it. Heavy work (chunking, index updates, searching, encoding the store) runs in the
worker pool; the loop only touches small dicts. A search racing an upsert may see a document's
old and new chunks for a moment, never a missing one, because new chunks are registered before
old ones are removed.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from .._concurrency import WorkerPool
from ..config.knowledge import HybridConfig, KnowledgeConfig
from ..embeddings.base import Embedder
from ..errors import ConfigError, UsageError
from .bm25 import BM25Index
from .chunking import Piece, chunk_markdown, chunk_text
from .ingest import IngestReport, ingest
from .loaders import SourceDoc
from .progress import Progress
from .ranking import Ranked, make_filter, rank
from .store import (
    ChunkRecord,
    DocRecord,
    FileRecord,
    Manifest,
    StoreV1,
    decode_store,
    encode_store,
    new_manifest,
    read_manifest,
    write_generation,
)
from .vectors import VectorIndex

__all__ = ["Hit", "KnowledgeBase"]

_EMBED_GROUP = 256  # chunks per embedding call during ingest: a progress tick and a memory bound


class Hit(msgspec.Struct, frozen=True):
    """One retrieved chunk. ``score`` is cosine (blended with BM25 in hybrid mode)."""

    content: str
    score: float
    doc_id: str
    title: str
    metadata: dict[str, Any]
    section: str = ""
    key: int = 0
    vector_score: float | None = None
    keyword_score: float | None = None


class KnowledgeBase:
    def __init__(
        self,
        name: str,
        cfg: KnowledgeConfig,
        embedder: Embedder,
        pool: WorkerPool,
        *,
        folder: Path,
        sources: list[Path] | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.embedder = embedder
        self.pool = pool
        self.folder = folder
        self.sources = list(sources or [])
        self.state: Literal["unopened", "open", "closed"] = "unopened"
        self._write = asyncio.Lock()
        self._docs: dict[str, DocRecord] = {}
        self._chunks: dict[int, ChunkRecord] = {}
        self.files: dict[str, FileRecord] = {}
        self._next_key = 1  # key 0 pads USearch batch results: never a real key
        self._vectors: VectorIndex | None = None
        self._bm25: BM25Index | None = None
        self._manifest: Manifest | None = None
        self.dirty = False

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.name!r}, chunks={len(self._chunks)}, state={self.state!r})"

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def doc_ids(self) -> list[str]:
        return list(self._docs)

    def document(self, doc_id: str) -> DocRecord | None:
        return self._docs.get(doc_id)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the saved base if there is one, else start empty. The embedder must be started."""
        if self.state != "unopened":
            raise UsageError(f"Knowledge base `{self.name}` is {self.state}; open() runs once")
        await self.load()
        self.state = "open"

    async def close(self) -> None:
        self.state = "closed"
        self._vectors = None
        self._bm25 = None

    async def __aenter__(self) -> KnowledgeBase:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def load(self, *, view: bool | None = None) -> None:
        """(Re)read the last saved generation; ``view`` memory-maps it read-only."""
        view = self.cfg.view if view is None else view
        async with self._write:
            manifest = await self.pool.run(read_manifest, self.folder)
            if manifest is None:
                self._reset()
                return
            self._check_compatible(manifest)
            store, vectors = await self.pool.run(self._read, manifest, view)
            self._docs = {doc.doc_id: doc for doc in store.docs}
            self._chunks = {chunk.key: chunk for chunk in store.chunks}
            self.files = dict(store.files)
            self._next_key = store.next_key
            self._vectors, self._bm25, self._manifest = vectors, None, manifest
            self.dirty = False

    def _reset(self) -> None:
        self._docs, self._chunks, self.files = {}, {}, {}
        self._next_key = 1
        self._vectors = self._new_vectors()
        self._bm25, self._manifest = None, None
        self.dirty = False

    def _new_vectors(self) -> VectorIndex:
        c = self.cfg
        return VectorIndex(
            ndim=self.embedder.dim, metric=c.metric, dtype=c.dtype, connectivity=c.connectivity,
            expansion_add=c.expansion_add, expansion_search=c.expansion_search,
            exact_below=c.exact_below,
        )  # fmt: skip

    def _check_compatible(self, manifest: Manifest) -> None:
        want = (self.embedder.model_id, self.embedder.dim, self.cfg.dtype, self.cfg.metric)
        got = (manifest.model_id, manifest.dim, manifest.dtype, manifest.metric)
        if want != got:
            raise ConfigError(
                f"Expected the index of knowledge base `{self.name}` to match its config"
                f" (embedder `{want[0]}`, dim {want[1]}, dtype {want[2]}, metric {want[3]}),"
                f" got one built with `{got[0]}`, dim {got[1]}, dtype {got[2]}, metric {got[3]}"
                f" - at `{self.folder}`; re-ingest with `tidegate ingest --rebuild`"
            )

    def _read(self, manifest: Manifest, view: bool) -> tuple[StoreV1, VectorIndex]:
        store_path = self.folder / manifest.store_file
        store = decode_store(store_path.read_bytes(), str(store_path))
        c = self.cfg
        vectors = VectorIndex.open(
            str(self.folder / manifest.index_file), view=view, metric=c.metric, dtype=c.dtype,
            expansion_search=c.expansion_search, exact_below=c.exact_below,
            connectivity=c.connectivity, expansion_add=c.expansion_add,
        )  # fmt: skip
        if len(vectors) != len(store.chunks):
            raise ConfigError(
                f"Expected {len(store.chunks)} vectors for the chunks in `{store_path}`,"
                f" got {len(vectors)} - at `{self.folder}`"
            )
        return store, vectors

    async def save(self) -> bool:
        """Write a new generation atomically; ``False`` when nothing changed since the last one."""
        self._check_open()
        async with self._write:
            if not self.dirty and self._manifest is not None:
                return False
            vectors = self._need_vectors()
            store = StoreV1(
                model_id=self.embedder.model_id, dim=self.embedder.dim, next_key=self._next_key,
                docs=list(self._docs.values()), chunks=list(self._chunks.values()),
                files=dict(self.files),
            )  # fmt: skip

            def make(generation: int, index_file: str, store_file: str) -> Manifest:
                return new_manifest(
                    generation, index_file, store_file, model_id=store.model_id, dim=store.dim,
                    dtype=self.cfg.dtype, metric=self.cfg.metric, count=len(store.chunks),
                )  # fmt: skip

            def write() -> Manifest:
                return write_generation(
                    self.folder, self._manifest, vectors.save, encode_store(store), make
                )

            self._manifest = await self.pool.run(write)
            self.dirty = False
            return True

    # -- changes --------------------------------------------------------------------------

    async def upsert(self, docs: list[SourceDoc], *, progress: Progress | None = None) -> int:
        """Add or replace documents by ``doc_id``; unchanged ones are skipped. Returns chunks added."""
        self._check_open()
        async with self._write:
            return await self._upsert(docs, progress)

    async def ingest(
        self,
        paths: list[Path] | None = None,
        *,
        progress: Progress | None = None,
        prune: bool | None = None,
        checkpoint_every: int | None = 2000,
        save: bool = True,
    ) -> IngestReport:
        """Ingest files/folders (default: configured sources), skipping unchanged files."""
        self._check_open()
        return await ingest(
            self, paths, progress=progress, prune=prune, checkpoint_every=checkpoint_every, save=save
        )

    async def delete(self, doc_ids: list[str]) -> int:
        """Remove documents by id; returns how many existed."""
        self._check_open()
        async with self._write:
            return await self._delete(doc_ids)

    async def _upsert(self, docs: list[SourceDoc], progress: Progress | None) -> int:
        fresh = [(doc, _doc_hash(doc)) for doc in docs]
        fresh = [(d, h) for d, h in fresh if (old := self._docs.get(d.doc_id)) is None or old.content_hash != h]
        if not fresh:
            return 0
        size, overlap = self.cfg.chunk_size, self.cfg.chunk_overlap
        pieces = await self.pool.run(lambda: [_chunk(d, size, overlap) for d, _ in fresh])
        total = sum(len(p) for _, p in pieces)
        done = 0
        if progress is not None:
            progress(0, total, "chunks")
        vectors = self._need_vectors()
        for (doc, digest), (title, doc_pieces) in zip(fresh, pieces, strict=True):
            records: list[ChunkRecord] = []
            for start in range(0, len(doc_pieces), _EMBED_GROUP):
                group = doc_pieces[start : start + _EMBED_GROUP]
                texts = [_embed_text(title, p) for p in group]
                matrix = await self.embedder.embed(texts, kind="document")
                keys = list(range(self._next_key, self._next_key + len(group)))
                self._next_key += len(group)
                batch = [
                    ChunkRecord(key, doc.doc_id, start + i, p.text, p.section)
                    for i, (key, p) in enumerate(zip(keys, group, strict=True))
                ]
                for record in batch:
                    self._chunks[record.key] = record
                records.extend(batch)
                await self.pool.run(vectors.add, np.asarray(keys, dtype=np.uint64), matrix)
                if self._bm25 is not None:
                    await self.pool.run(self._bm25.add, list(zip(keys, texts, strict=True)))
                done += len(group)
                if progress is not None:
                    progress(done, total, "chunks")
            old = self._docs.get(doc.doc_id)
            self._docs[doc.doc_id] = DocRecord(
                doc.doc_id, title, digest, [r.key for r in records], dict(doc.metadata), doc.source
            )
            if old is not None:
                await self._drop_keys(old.keys)
            self.dirty = True
        return total

    async def _delete(self, doc_ids: list[str]) -> int:
        removed = [doc for doc_id in doc_ids if (doc := self._docs.pop(doc_id, None)) is not None]
        keys = [key for doc in removed for key in doc.keys]
        await self._drop_keys(keys)
        if removed:
            self.dirty = True
        return len(removed)

    async def _drop_keys(self, keys: list[int]) -> None:
        if not keys:
            return
        await self.pool.run(self._need_vectors().remove, keys)
        if self._bm25 is not None:
            await self.pool.run(self._bm25.remove, keys)
        for key in keys:
            self._chunks.pop(key, None)

    # -- search ---------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        score_threshold: float | None = None,
        filters: dict[str, Any] | None = None,
        hybrid: HybridConfig | None = None,
    ) -> list[Hit]:
        """Best chunks for ``query``.

        ``filters`` keeps chunks whose document metadata (plus ``doc_id``, ``title``, ``source``,
        ``section``) equals each given value, or is one of the values given as a list.
        ``hybrid`` overrides the configured keyword/vector blend for this call.
        """
        self._check_open()
        k = top_k if top_k is not None else self.cfg.top_k
        threshold = score_threshold
        if threshold is None:
            threshold = self.cfg.score_threshold
        if threshold is None:
            threshold = self.embedder.default_threshold
        blend = hybrid if hybrid is not None else self.cfg.hybrid
        if blend is not None and blend.keyword_weight <= 0:
            blend = None
        if not query.strip() or not self._chunks or k <= 0:
            return []
        vector = (await self.embedder.embed([query], kind="query"))[0]
        if blend is not None and self._bm25 is None:
            await self._build_bm25()
        ranked = await self.pool.run(self._rank, query, vector, k, filters, blend)
        hits = []
        for key, score, vector_score, keyword_score in ranked:
            chunk = self._chunks.get(key)
            doc = self._docs.get(chunk.doc_id) if chunk is not None else None
            if chunk is None or doc is None or score < threshold:
                continue
            meta = {**doc.metadata, "source": doc.source, "section": chunk.section,
                    "position": chunk.position}  # fmt: skip
            hits.append(Hit(chunk.content, score, doc.doc_id, doc.title, meta, chunk.section,
                            key, vector_score, keyword_score))  # fmt: skip
        return hits

    async def _build_bm25(self) -> None:
        chunks = list(self._chunks.values())
        titles = {doc_id: doc.title for doc_id, doc in self._docs.items()}

        def build() -> BM25Index:
            index = BM25Index()
            index.add([(c.key, _embed_text(titles.get(c.doc_id, ""), Piece(c.content, c.section)))
                       for c in chunks])  # fmt: skip
            return index

        built = await self.pool.run(build)
        if self._bm25 is None:
            self._bm25 = built
            # Chunks changed while it was built are few: re-sync them cheaply.
            seen = {c.key for c in chunks}
            missing = [k for k in self._chunks if k not in seen]
            gone = [c.key for c in chunks if c.key not in self._chunks]
            if gone:
                built.remove(gone)
            if missing:
                built.add([(k, _embed_text(titles.get(self._chunks[k].doc_id, ""),
                                           Piece(self._chunks[k].content, self._chunks[k].section)))
                           for k in missing])  # fmt: skip

    def _rank(
        self, query: str, vector: np.ndarray, k: int, filters: dict[str, Any] | None,
        blend: HybridConfig | None,
    ) -> list[Ranked]:  # fmt: skip
        accept = make_filter(filters, self._chunks, self._docs) if filters else None
        return rank(query, vector, k, self._need_vectors(), self._bm25, accept, blend)

    # -- helpers --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state != "open":
            raise UsageError(f"Knowledge base `{self.name}` is {self.state}; call open() first")

    def _need_vectors(self) -> VectorIndex:
        if self._vectors is None:
            raise UsageError(f"Knowledge base `{self.name}` is {self.state}")
        return self._vectors


def _doc_hash(doc: SourceDoc) -> str:
    raw = msgspec.msgpack.encode((doc.text, doc.title, doc.format, doc.metadata, doc.source))
    return hashlib.sha256(raw).hexdigest()


def _chunk(doc: SourceDoc, size: int, overlap: int) -> tuple[str, list[Piece]]:
    """The document's title (given, first H1, or from its file name) and its chunks."""
    heading: str | None = None
    if doc.format == "markdown":
        heading, pieces = chunk_markdown(doc.text, size=size, overlap=overlap)
    else:
        pieces = chunk_text(doc.text, size=size, overlap=overlap)
    name = doc.doc_id.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("-", " ").replace("_", " ")
    return doc.title or heading or name, pieces


def _embed_text(title: str, piece: Piece) -> str:
    """What is embedded: the heading path gives a short chunk the context it lacks."""
    head = " > ".join(part for part in (title, piece.section) if part)
    return f"{head}\n{piece.text}" if head else piece.text
