"""Source files become documents: front matter, HTML structure, JSON lines, hidden files skipped."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tidegate.errors import ConfigError
from tidegate.knowledge.loaders import find_files, html_to_markdown, read_file


def test_markdown_front_matter_becomes_metadata(tmp_path: Path) -> None:
    file = tmp_path / "refunds.md"
    file.write_text("---\ntitle: Refund policy\ncategory: refunds\nupdated: 2024-05-01\n---\n# R\n\nBody\n")
    (doc,) = read_file(file, "refunds.md")
    assert doc.title == "Refund policy" and doc.format == "markdown"
    assert doc.metadata == {"category": "refunds", "updated": "2024-05-01"}
    assert doc.text.startswith("# R")


def test_html_keeps_headings_and_drops_scripts() -> None:
    title, text = html_to_markdown(
        "<html><head><title>Help</title><style>p{}</style></head><body><nav>menu</nav>"
        "<h2>Returns</h2><p>Send it back within <b>30 days</b>.</p><script>evil()</script>"
        "<ul><li>one</li><li>two</li></ul></body></html>"
    )
    assert title == "Help"
    assert "## Returns" in text and "30 days" in text and "- one" in text
    assert "evil" not in text and "menu" not in text and "p{}" not in text


def test_jsonl_lines_become_documents(tmp_path: Path) -> None:
    file = tmp_path / "faq.jsonl"
    file.write_text(
        '{"id": "a1", "question": "Can I pay later?", "answer": "Yes, in 3 parts.", "lang": "en"}\n'
        "\n"
        '{"title": "Stores", "content": "Open 9 to 5.", "metadata": {"region": "north"}}\n'
    )
    first, second = read_file(file, "faq.jsonl")
    assert first.doc_id == "faq.jsonl#a1" and first.title == "Can I pay later?"
    assert "Yes, in 3 parts." in first.text and first.metadata == {"lang": "en"}
    assert second.doc_id == "faq.jsonl#3" and second.metadata == {"region": "north"}


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text('{"content": "ok"}\n[1, 2]\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:2"):
        read_file(file, "bad.jsonl")


def test_find_files_walks_folders_and_skips_hidden_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("x")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "c.png").write_bytes(b"\x89PNG")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.md").write_text("secret")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4")
    found = [rel for _, rel in find_files([tmp_path])]
    expected = ["a/x.md", "b.txt"]
    if importlib.util.find_spec("pypdf") is not None:
        expected.append("doc.pdf")
    assert found == sorted(expected)
    with pytest.raises(ConfigError, match="not found"):
        find_files([tmp_path / "missing"])
