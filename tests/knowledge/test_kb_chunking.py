"""Chunking follows structure, respects the size bound and loses no text."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.knowledge.chunking import chunk_markdown, chunk_text, split_markdown

DOC = """# Refunds

Intro paragraph.

## How long does a refund take?
Refunds take 5 days. Cards can take longer.

### Partial refunds
Damaged items get partial refunds.

## Code sample
```
# not a heading
```
"""


def test_headings_become_section_paths_and_title() -> None:
    title, sections = split_markdown(DOC)
    assert title == "Refunds"
    paths = [" > ".join(p) for p, _ in sections]
    assert paths == ["", "How long does a refund take?",
                     "How long does a refund take? > Partial refunds", "Code sample"]  # fmt: skip
    assert "# not a heading" in sections[-1][1]  # fenced code is not structure


def test_chunks_never_cross_a_heading() -> None:
    _, pieces = chunk_markdown(DOC, size=1000, overlap=0)
    assert [p.section for p in pieces][1:3] == [
        "How long does a refund take?", "How long does a refund take? > Partial refunds"
    ]
    assert "Damaged" not in pieces[1].text


def test_long_sections_split_on_sentences_with_overlap() -> None:
    text = " ".join(f"Sentence number {i} says something useful." for i in range(40))
    pieces = chunk_text(text, size=200, overlap=60)
    assert len(pieces) > 5
    assert all(len(p.text) <= 200 for p in pieces)
    for before, after in itertools.pairwise(pieces):
        first = re.match(r"Sentence number \d+", after.text)
        assert first is not None and first.group(0) in before.text  # overlap repeats a sentence
    assert all(p.text.startswith("Sentence") for p in pieces)  # cut at sentence starts


def test_overlong_words_are_hard_split() -> None:
    pieces = chunk_text("x" * 1000, size=300, overlap=0)
    assert [len(p.text) for p in pieces] == [300, 300, 300, 100]


def test_cjk_sentences_split_without_spaces() -> None:
    text = "退款需要五个工作日。" * 40
    pieces = chunk_text(text, size=50, overlap=0)
    assert all(len(p.text) <= 50 for p in pieces) and len(pieces) >= 8


words = st.text(alphabet="abcdefghij .!?\n", min_size=1, max_size=30)


@settings(max_examples=80, deadline=None)
@given(st.lists(words, min_size=1, max_size=30), st.integers(40, 400), st.integers(0, 39))
def test_every_word_survives_and_no_chunk_is_oversized(parts: list[str], size: int, overlap: int) -> None:
    text = "\n\n".join(parts)
    pieces = chunk_text(text, size=size, overlap=overlap)
    assert all(len(p.text) <= size for p in pieces)
    chunked = " ".join(p.text for p in pieces).split()
    for word in text.split():
        assert word in chunked or any(word in c for c in chunked) or len(word) > size
