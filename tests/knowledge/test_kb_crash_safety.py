"""A process killed (SIGKILL) while saving never leaves an unloadable or inconsistent base.

Two ways to land the kill: deterministically at each durable step of a save (the child kills
itself when the N-th rename or cleanup starts), and from outside at random moments while a child
runs `ingest_main` over and over, as `tidegate ingest` would.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidegate._concurrency import WorkerPool
from tidegate.config.knowledge import KnowledgeConfig
from tidegate.embeddings import HashEmbedder
from tidegate.knowledge import Document, KnowledgeBase, build_knowledge_base
from tidegate.knowledge.store import read_manifest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from types import SimpleNamespace
    from tidegate._concurrency import WorkerPool
    from tidegate.config.knowledge import EmbedderConfig, KnowledgeConfig
    from tidegate.embeddings import HashEmbedder
    from tidegate.knowledge import Document, build_knowledge_base
    from tidegate.knowledge.cli import ingest_main

    index, source, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = KnowledgeConfig(index=index, source=source, embedder="default")

    def die_on(name, n):
        # Kill this process when the n-th call of os.<name> starts: a crash between two steps.
        real = getattr(os, name)
        calls = [0]
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(os, name, wrapper)

    async def step(kind, n):
        pool = WorkerPool(2)
        async with HashEmbedder("default", pool=pool, dim=256) as emb:
            async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                await kb.upsert([Document("added", "A document added before the crash.")])
                die_on(kind, n)
                await kb.save()
        print("saved without dying", flush=True)

    if mode == "loop":
        root = SimpleNamespace(embeddings={"default": EmbedderConfig(kind="hash", dim=256)},
                               knowledge={"kb": cfg}, source=None)
        devnull = open(os.devnull, "w")
        i = 0
        while True:
            # Atomically: a kill in the middle of a plain write would leave an empty source file
            # (no chunk), and the final count below expects one chunk per file.
            Path(source, ".next.tmp").write_text(f"# New {i}\\n\\nRevision {i} of this file.\\n")
            os.replace(Path(source, ".next.tmp"), Path(source, f"new{i % 5}.md"))
            print(f"ingest {i}", flush=True)
            assert ingest_main(root, "kb", out=devnull, err=devnull, checkpoint_every=None) == 0
            i += 1
    else:
        kind, n = mode.split(":")
        asyncio.run(step(kind, int(n)))
    """
)


def _corpus(folder: Path, files: int = 40) -> Path:
    folder.mkdir()
    for i in range(files):
        paragraphs = "\n\n".join(f"Paragraph {j} of file {i} talks about topic {j * i % 11}." for j in range(8))
        (folder / f"doc{i:03d}.md").write_text(f"# File {i}\n\n{paragraphs}\n")
    return folder


async def _check_consistent(kb: KnowledgeBase) -> int:
    """The loaded base agrees with itself: manifest, store and index describe the same chunks."""
    manifest = read_manifest(kb.folder)
    assert manifest is not None
    assert manifest.count == len(kb) == sum(len(kb.document(d).keys) for d in kb.doc_ids)  # type: ignore[union-attr]
    hits = await kb.search("topic 3", score_threshold=-1.0)
    assert hits and all(h.doc_id in kb.doc_ids for h in hits)
    return len(kb)


def _run_child(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip


@pytest.mark.parametrize(
    "crash_at",
    ["replace:1", "replace:2", "replace:3", "unlink:1"],
    ids=["index-written", "store-written", "before-manifest-switch", "during-cleanup"],
)
async def test_kill_at_each_step_of_a_save_leaves_a_loadable_base(tmp_path: Path, crash_at: str) -> None:
    source = _corpus(tmp_path / "docs", files=10)
    cfg = KnowledgeConfig(index=str(tmp_path / "index"), source=str(source))
    pool = WorkerPool(2)
    try:
        async with HashEmbedder("default", pool=pool, dim=256) as emb:
            async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                await kb.ingest()
                before = len(kb)
            result = await asyncio.to_thread(_run_child, [str(tmp_path / "index"), str(source), crash_at])
            assert result.returncode == -signal.SIGKILL, result.stderr
            async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                after = await _check_consistent(kb)
                # Before the manifest switch the old generation stands; after it, the new one.
                assert after == (before + 1 if crash_at == "unlink:1" else before)
                # The next save works and clears the dead generation's leftovers.
                await kb.upsert([kb_doc("later")])
                assert await kb.save()
            names = sorted(p.name for p in (tmp_path / "index").iterdir())
            assert len(names) == 3 and not any(n.endswith(".tmp") for n in names)
    finally:
        pool.shutdown()


def kb_doc(doc_id: str) -> Document:
    return Document(doc_id, f"Document {doc_id} about topic 3.")


async def test_sigkill_of_a_running_ingest_never_corrupts_the_index(tmp_path: Path) -> None:
    source = _corpus(tmp_path / "docs", files=60)
    cfg = KnowledgeConfig(index=str(tmp_path / "index"), source=str(source))
    pool = WorkerPool(2)
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    try:
        async with HashEmbedder("default", pool=pool, dim=256) as emb:
            async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                await kb.ingest()
            for attempt in range(3):
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(tmp_path / "index"), str(source), "loop"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                )  # fmt: skip
                try:
                    assert child.stdout is not None
                    # Let it finish a couple of ingests, then kill at a random moment.
                    for _ in range(2 + attempt):
                        line = await asyncio.to_thread(child.stdout.readline)
                        assert line.startswith("ingest"), child.stderr.read() if child.stderr else ""
                    await asyncio.sleep(rng.uniform(0.0, 0.15))
                    child.send_signal(signal.SIGKILL)
                finally:
                    await asyncio.to_thread(child.wait, 10)
                    if child.stdout is not None:
                        child.stdout.close()
                    if child.stderr is not None:
                        child.stderr.close()
                assert child.returncode == -signal.SIGKILL
                async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                    assert await _check_consistent(kb) >= 60
            # A normal run afterwards resumes and completes.
            async with build_knowledge_base("kb", cfg, emb, pool) as kb:
                report = await kb.ingest()
                assert report.files in (64, 65) and len(kb) == report.files
    finally:
        pool.shutdown()
