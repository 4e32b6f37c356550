"""Split documents into retrievable chunks along their structure.

A chunk never crosses a heading: answers in FAQ-like corpora live under one heading, and mixing
two sections makes both harder to find. Within a section, paragraphs are packed up to
``size`` characters; an oversized paragraph falls back to sentences, then to words. Consecutive
chunks of one section share up to ``overlap`` characters so a sentence cut at a boundary still
appears whole somewhere. Each chunk keeps its heading path, which is embedded with it.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["Piece", "chunk_markdown", "chunk_text", "split_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLANK = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?;。！？；])\s+|(?<=[。！？；])")


class Piece(msgspec.Struct, frozen=True, gc=False):
    """One chunk: its text and the heading path it sits under (``"Refunds > Partial refunds"``)."""

    text: str
    section: str = ""


def split_markdown(text: str) -> tuple[str | None, list[tuple[list[str], str]]]:
    """The first H1 (a title candidate) and ``(heading path, body)`` for every section."""
    title: str | None = None
    sections: list[tuple[list[str], str]] = []
    path: list[str] = []
    levels: list[int] = []
    body: list[str] = []
    in_fence = False

    def close() -> None:
        joined = "\n".join(body).strip()
        if joined:
            sections.append((list(path), joined))
        body.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        close()
        level, heading = len(match.group(1)), match.group(2).strip()
        if level == 1 and title is None and not sections:
            title = heading
            continue
        while levels and levels[-1] >= level:
            levels.pop()
            path.pop()
        levels.append(level)
        path.append(heading)
    close()
    return title, sections


def chunk_markdown(text: str, *, size: int, overlap: int) -> tuple[str | None, list[Piece]]:
    """Title (first H1) and chunks of a markdown document."""
    title, sections = split_markdown(text)
    pieces: list[Piece] = []
    for path, body in sections:
        section = " > ".join(path)
        pieces.extend(Piece(part, section) for part in _pack(_paragraphs(body), size, overlap))
    return title, pieces


def chunk_text(text: str, *, size: int, overlap: int, section: str = "") -> list[Piece]:
    """Chunks of plain text (paragraphs separated by blank lines)."""
    return [Piece(part, section) for part in _pack(_paragraphs(text), size, overlap)]


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _BLANK.split(text) if p.strip()]


def _pack(paragraphs: list[str], size: int, overlap: int) -> list[str]:
    # Units are whole paragraphs when they fit, else sentences (else word runs); each carries
    # the separator it takes when appended to the previous one.
    units: list[tuple[str, str]] = []
    for paragraph in paragraphs:
        if len(paragraph) <= size:
            units.append((paragraph, "\n\n"))
            continue
        separator = "\n\n"
        for sentence in (s.strip() for s in _SENTENCE.split(paragraph)):
            for piece in [sentence] if len(sentence) <= size else _words(sentence, size):
                if piece:
                    units.append((piece, separator))
                    separator = " "
    chunks: list[str] = []
    current = ""
    for unit, separator in units:
        if not current:
            current = unit
        elif len(current) + len(separator) + len(unit) <= size:
            current += separator + unit
        else:
            chunks.append(current)
            tail = _tail(current, overlap)
            current = tail + " " + unit if tail and len(tail) + 1 + len(unit) <= size else unit
    if current:
        chunks.append(current)
    return chunks


def _words(sentence: str, size: int) -> list[str]:
    out: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > size:  # one "word" longer than a chunk (a URL, CJK run)
            if current:
                out.append(current)
                current = ""
            out.append(word[:size])
            word = word[size:]
        if current and len(current) + 1 + len(word) > size:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters, starting at a sentence (else word) boundary."""
    if overlap <= 0 or not text:
        return ""
    window = text[-overlap:]
    if len(window) == len(text):
        return ""  # the whole previous chunk would repeat: no point
    for match in _SENTENCE.finditer(window):
        start = match.end()
        if start < len(window):
            return window[start:].strip()
    space = window.find(" ")
    return window[space + 1 :].strip() if space >= 0 else ""
