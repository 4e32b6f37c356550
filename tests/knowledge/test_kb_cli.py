"""`ingest_main` / `search_main`, the bodies of `tidegate ingest` and `tidegate search`."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from tidegate.config.knowledge import EmbedderConfig, KnowledgeConfig
from tidegate.knowledge.cli import ingest_main, search_main


def _config(tmp_path: Path) -> SimpleNamespace:
    docs = tmp_path / "kb" / "docs"
    docs.mkdir(parents=True)
    (docs / "returns.md").write_text("# Returns\n\n## Window\nYou can return items within 30 days.\n")
    (docs / "shipping.md").write_text("# Shipping\n\n## Express\nExpress delivery takes one day.\n")
    return SimpleNamespace(
        embeddings={"lexical": EmbedderConfig(kind="hash")},
        knowledge={"help": KnowledgeConfig(index="state/help", source="kb/docs", embedder="lexical")},
        source=str(tmp_path / "tidegate.yaml"),  # relative paths resolve next to the config file
    )


def test_ingest_then_search_print_results(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert ingest_main(cfg, "help", out=out, err=err) == 0
    assert "help: 2 files (0 unchanged, 2 ingested, 0 removed), 2 chunks" in out.getvalue()
    assert "2/2 files" in err.getvalue()  # the progress bar
    assert (tmp_path / "state" / "help" / "manifest.json").exists()

    out = io.StringIO()
    assert ingest_main(cfg, None, out=out, err=io.StringIO()) == 0  # all bases; nothing changed
    assert "(2 unchanged, 0 ingested" in out.getvalue()

    out = io.StringIO()
    assert search_main(cfg, "help", "return items", 1, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("1. [") and "returns.md > Window" in lines[0]
    assert "within 30 days" in lines[1] and len(lines) == 2


def test_rebuild_starts_from_scratch(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert ingest_main(cfg, "help", out=io.StringIO(), err=io.StringIO()) == 0
    out = io.StringIO()
    assert ingest_main(cfg, "help", rebuild=True, out=out, err=io.StringIO()) == 0
    assert "(0 unchanged, 2 ingested" in out.getvalue()


def test_errors_are_reported_with_exit_status(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    err = io.StringIO()
    assert ingest_main(cfg, "nope", out=io.StringIO(), err=err) == 1
    assert "unknown knowledge base `nope`; configured: help" in err.getvalue()
    err = io.StringIO()
    assert search_main(cfg, "nope", "q", out=io.StringIO(), err=err) == 1
    out = io.StringIO()
    assert search_main(cfg, "help", "q", out=out, err=io.StringIO()) == 1
    assert "run `tidegate ingest` first" in out.getvalue()
    cfg.knowledge["help"] = KnowledgeConfig(index="state/help", source="missing/", embedder="lexical")
    err = io.StringIO()
    assert ingest_main(cfg, "help", out=io.StringIO(), err=err) == 1
    assert "error: Expected a file or folder to ingest" in err.getvalue()
