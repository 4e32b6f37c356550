"""What ``tidegate ingest`` and ``tidegate search`` run (argument parsing stays in ``tidegate.cli``).

Both are sync entry points that own a short-lived event loop, worker pool and embedder, so they
work without a running Gateway (and while one serves from the same index: saves are atomic and
never rewrite the files a server has open).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import Any, TextIO

from .._concurrency import WorkerPool
from ..embeddings import build_embedder
from ..errors import TidegateError
from . import build_knowledge_base, embedder_config
from .progress import ProgressBar

__all__ = ["ingest_main", "search_main"]


def ingest_main(
    cfg: Any,
    kb_name: str | None = None,
    *,
    rebuild: bool = False,
    checkpoint_every: int | None = 2000,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Ingest the configured sources of one knowledge base (or all); exit status 0 on success."""
    out = out or sys.stdout
    err = err or sys.stderr
    bases: dict[str, Any] = getattr(cfg, "knowledge", None) or {}
    names = [kb_name] if kb_name else list(bases)
    if not names:
        print("no knowledge bases configured (add a `knowledge:` section)", file=err)
        return 1
    for name in names:
        if name not in bases:
            print(f"unknown knowledge base `{name}`; configured: {', '.join(bases) or 'none'}", file=err)
            return 1
    try:
        return asyncio.run(_ingest(cfg, names, rebuild, checkpoint_every, out, err))
    except TidegateError as exc:
        print(f"error: {exc}", file=err)
        return 1


async def _ingest(
    cfg: Any, names: list[str], rebuild: bool, checkpoint_every: int | None, out: TextIO, err: TextIO
) -> int:
    pool = WorkerPool(2, name="tidegate-ingest")
    try:
        for name in names:
            kb_cfg = cfg.knowledge[name]
            embedder = build_embedder(kb_cfg.embedder, embedder_config(cfg, kb_cfg.embedder), pool)
            async with embedder:
                kb = build_knowledge_base(name, kb_cfg, embedder, pool, root=cfg)
                if not kb.sources:
                    print(f"knowledge base `{name}` has no `source` to ingest", file=err)
                    return 1
                if rebuild and kb.folder.exists():
                    await pool.run(shutil.rmtree, kb.folder)
                async with kb:
                    report = await kb.ingest(
                        progress=ProgressBar(name, stream=err), checkpoint_every=checkpoint_every
                    )
                    print(
                        f"{name}: {report.files} files ({report.skipped} unchanged,"
                        f" {report.changed} ingested, {report.removed} removed),"
                        f" {report.chunks} chunks in {report.seconds:.1f}s"
                        f" ({report.chunks_per_second:,.1f} chunks/s); {len(kb)} chunks total"
                        f" -> {kb.folder}",
                        file=out,
                    )
    finally:
        pool.shutdown(wait=True)
    return 0


def search_main(cfg: Any, kb: str, query: str, k: int = 5, *, out: TextIO | None = None,
                err: TextIO | None = None) -> int:  # fmt: skip
    """Print the ``k`` best chunks for ``query`` with their scores."""
    out = out or sys.stdout
    err = err or sys.stderr
    bases: dict[str, Any] = getattr(cfg, "knowledge", None) or {}
    if kb not in bases:
        print(f"unknown knowledge base `{kb}`; configured: {', '.join(bases) or 'none'}", file=err)
        return 1
    try:
        return asyncio.run(_search(cfg, kb, query, k, out))
    except TidegateError as exc:
        print(f"error: {exc}", file=err)
        return 1


async def _search(cfg: Any, name: str, query: str, k: int, out: TextIO) -> int:
    pool = WorkerPool(2, name="tidegate-search")
    try:
        kb_cfg = cfg.knowledge[name]
        embedder = build_embedder(kb_cfg.embedder, embedder_config(cfg, kb_cfg.embedder), pool)
        async with embedder:
            kb = build_knowledge_base(name, kb_cfg, embedder, pool, root=cfg)
            async with kb:
                if not len(kb):
                    print(f"knowledge base `{name}` is empty: run `tidegate ingest` first", file=out)
                    return 1
                hits = await kb.search(query, top_k=k, score_threshold=-1.0)
                for rank, hit in enumerate(hits, start=1):
                    where = f"{hit.doc_id}" + (f" > {hit.section}" if hit.section else "")
                    print(f"{rank}. [{hit.score:.3f}] {where}", file=out)
                    text = " ".join(hit.content.split())
                    print(f"   {text[:300]}{'…' if len(text) > 300 else ''}", file=out)
    finally:
        pool.shutdown(wait=True)
    return 0
