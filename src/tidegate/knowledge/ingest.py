"""Resumable ingest of files and folders into a knowledge base.

Each source file's content hash is remembered in the documents store; a file whose hash did not
change is skipped, so re-running after an interruption (or after editing one file) only embeds
what is new. Progress is saved every ``checkpoint_every`` chunks, so a killed run loses at most
that much work; a file counts as ingested only once all its chunks are in, so a checkpoint never
records a half-ingested file as done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .loaders import SourceDoc, file_hash, find_files, read_file
from .progress import Progress
from .store import FileRecord

if TYPE_CHECKING:
    from .base import KnowledgeBase

__all__ = ["IngestReport", "ingest"]


class IngestReport(msgspec.Struct):
    files: int = 0
    skipped: int = 0
    changed: int = 0
    removed: int = 0
    chunks: int = 0
    seconds: float = 0.0
    saved: bool = False

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0


def _scan(paths: list[Path]) -> list[tuple[Path, str, str]]:
    return [(file, rel, file_hash(file)) for file, rel in find_files(paths)]


def _read_all(files: list[tuple[Path, str, str]]) -> list[tuple[str, str, list[SourceDoc]]]:
    return [(rel, digest, read_file(file, rel)) for file, rel, digest in files]


async def ingest(
    kb: KnowledgeBase,
    paths: list[Path] | None = None,
    *,
    progress: Progress | None = None,
    prune: bool | None = None,
    checkpoint_every: int | None = 2000,
    save: bool = True,
) -> IngestReport:
    """Bring ``kb`` in line with the files under ``paths`` (default: its configured sources).

    ``prune`` removes documents of files that disappeared; it defaults to on when ingesting the
    configured sources (then the base mirrors them) and off for ad-hoc paths.
    """
    started = time.monotonic()
    roots = list(paths) if paths is not None else list(kb.sources)
    if prune is None:
        prune = paths is None
    report = IngestReport()
    scanned = await kb.pool.run(_scan, roots)
    report.files = len(scanned)
    seen = {rel for _, rel, _ in scanned}
    changed = [(f, rel, h) for f, rel, h in scanned if (old := kb.files.get(rel)) is None or old.content_hash != h]
    report.skipped = report.files - len(changed)
    report.changed = len(changed)
    if progress is not None:
        progress(report.skipped, report.files, "files")

    if prune:
        gone = [rel for rel in kb.files if rel not in seen]
        for rel in gone:
            record = kb.files.pop(rel)
            await kb.delete(record.doc_ids)
            kb.dirty = True
        report.removed = len(gone)

    since_checkpoint = 0
    done_files = report.skipped
    for start in range(0, len(changed), 16):
        batch = changed[start : start + 16]
        for rel, digest, docs in await kb.pool.run(_read_all, batch):
            previous = kb.files.get(rel)
            new_ids = [doc.doc_id for doc in docs]
            keep = set(new_ids)
            stale = [d for d in (previous.doc_ids if previous else []) if d not in keep]
            if stale:
                await kb.delete(stale)
            added = await kb.upsert(docs, progress=None)
            kb.files[rel] = FileRecord(digest, new_ids)
            kb.dirty = True
            report.chunks += added
            since_checkpoint += added
            done_files += 1
            if progress is not None:
                progress(done_files, report.files, "files")
            if save and checkpoint_every and since_checkpoint >= checkpoint_every:
                await kb.save()
                since_checkpoint = 0
    if save:
        report.saved = await kb.save()
    report.seconds = time.monotonic() - started
    return report
