"""Read source files into documents: markdown, text, HTML, JSON lines, and PDF with ``pypdf``.

A file becomes one document (a JSON-lines file one per line), identified by its path relative to
the folder being ingested, so moving the whole corpus keeps ids stable. Markdown front matter
(``---`` YAML block) and JSON-lines fields other than the text become metadata for filters.
"""

from __future__ import annotations

import hashlib
import html.parser
import importlib.util
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from ..errors import ConfigError

__all__ = ["SUPPORTED", "SourceDoc", "file_hash", "find_files", "read_file"]

Format = Literal["markdown", "text"]

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
             ".html": "html", ".htm": "html", ".jsonl": "jsonl", ".pdf": "pdf"}  # fmt: skip
_TEXT_KEYS = ("content", "text", "body", "answer", "page_content")
_TITLE_KEYS = ("title", "question", "name")
_ID_KEYS = ("id", "doc_id", "_id")


class SourceDoc(msgspec.Struct, frozen=True):
    """A document before chunking; ``format`` tells the chunker how to read ``text``."""

    doc_id: str
    text: str
    title: str = ""
    format: Format = "text"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    source: str = ""


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """``(file, relative id)`` for every supported file under ``paths``, sorted for stable order."""
    found: dict[str, Path] = {}
    for root in paths:
        if root.is_file():
            found.setdefault(root.name, root)
            continue
        if not root.is_dir():
            raise ConfigError(f"Expected a file or folder to ingest, got `{root}` (not found)")
        for file in sorted(root.rglob("*")):
            if file.is_file() and file.suffix.lower() in SUPPORTED and not _hidden(file, root):
                if file.suffix.lower() == ".pdf" and importlib.util.find_spec("pypdf") is None:
                    continue
                found.setdefault(file.relative_to(root).as_posix(), file)
    return [(file, rel) for rel, file in sorted(found.items())]


def _hidden(file: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def read_file(path: Path, doc_id: str) -> list[SourceDoc]:
    kind = SUPPORTED.get(path.suffix.lower(), "text")
    if kind == "pdf":
        return [_read_pdf(path, doc_id)]
    raw = path.read_text(encoding="utf-8", errors="replace")
    source = str(path)
    if kind == "markdown":
        meta, body = _front_matter(raw)
        title = str(meta.pop("title", "") or "")
        return [SourceDoc(doc_id, body, title, "markdown", meta, source)]
    if kind == "html":
        title, body = html_to_markdown(raw)
        return [SourceDoc(doc_id, body, title, "markdown", {}, source)]
    if kind == "jsonl":
        return list(_read_jsonl(raw, doc_id, source))
    return [SourceDoc(doc_id, raw, "", "text", {}, source)]


def _front_matter(raw: str) -> tuple[dict[str, Any], str]:
    if not raw.startswith("---"):
        return {}, raw
    end = raw.find("\n---", 3)
    if end < 0:
        return {}, raw
    try:
        meta = yaml.safe_load(raw[3:end])
    except yaml.YAMLError:
        return {}, raw
    if not isinstance(meta, dict):
        return {}, raw
    body = raw[end + 4 :].lstrip("-").lstrip("\n")
    return {str(k): _plain(v) for k, v in meta.items()}, body


def _plain(value: Any) -> Any:
    """Metadata must survive msgpack and JSON: dates and other objects become strings."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _read_jsonl(raw: str, doc_id: str, source: str) -> list[SourceDoc]:
    docs: list[SourceDoc] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"Expected a JSON object per line, got invalid JSON - at `{source}:{number}`") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"Expected a JSON object per line, got `{type(record).__name__}` - at `{source}:{number}`")
        text = next((str(record[k]) for k in _TEXT_KEYS if record.get(k)), "")
        title = next((str(record[k]) for k in _TITLE_KEYS if record.get(k)), "")
        if "question" in record and "answer" in record:
            text = f"{record['question']}\n\n{record['answer']}"
        ident = next((str(record[k]) for k in _ID_KEYS if record.get(k) is not None), str(number))
        meta = dict(record.get("metadata") or {}) if isinstance(record.get("metadata"), dict) else {}
        skip = {*_TEXT_KEYS, *_TITLE_KEYS, *_ID_KEYS, "metadata"}
        meta.update({k: _plain(v) for k, v in record.items() if k not in skip})
        if text.strip():
            docs.append(SourceDoc(f"{doc_id}#{ident}", text, title, "text", meta, source))
    return docs


def _read_pdf(path: Path, doc_id: str) -> SourceDoc:
    try:
        import pypdf  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:  # find_files skips PDFs without it; a direct call lands here
        raise ConfigError("Expected `pypdf` to read PDF files (pip install 'tidegate[pdf]')") from exc
    reader = pypdf.PdfReader(str(path))
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    title = str((reader.metadata or {}).get("/Title") or "")
    # Pages as sections keep a hit's page number visible in its section path.
    text = "\n\n".join(f"## Page {n}\n\n{p}" for n, p in enumerate(pages, start=1) if p)
    return SourceDoc(doc_id, text, title, "markdown", {"pages": len(pages)}, str(path))


_BLOCKS = {"p", "div", "section", "article", "li", "tr", "br", "table", "ul", "ol", "pre",
           "blockquote", "dd", "dt", "header", "main"}  # fmt: skip
_SKIP = {"script", "style", "nav", "footer", "noscript", "template", "svg", "head"}


class _HTMLText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip += 1
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in _BLOCKS:
            self.out.append("\n\n" if tag != "li" else "\n\n- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif (len(tag) == 2 and tag[0] == "h" and tag[1] in "123456") or tag in _BLOCKS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self._skip:
            self.out.append(" ".join(data.split()) if data.strip() else " ")


def html_to_markdown(raw: str) -> tuple[str, str]:
    """``(title, markdown-ish text)``: headings and blocks kept, tags and scripts dropped."""
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return parser.title, text.strip()
