"""Curated answers (Dify's "annotation reply"): question → answer pairs an operator writes.

Loaded from a file at start (JSONL, or YAML/JSON holding a list or ``{version: 1, answers: [...]}``)
and matched on the last user question — normalized text first, then embedding similarity with the
same threshold and trap guard as the semantic tier. They never expire and are never evicted. An
entry may be limited to one ``tenant`` and/or one ``route``; without them it applies to all,
which is safe because the operator, not a tenant, wrote it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import yaml

from ..config.loader import convert_section
from ..config.types import ConfigStruct
from ..errors import ConfigError
from .text import normalize_question

__all__ = ["CuratedAnswer", "CuratedIndex", "curated_completion", "load_curated"]


class CuratedAnswer(ConfigStruct):
    question: str
    answer: str
    alternates: list[str] = msgspec.field(default_factory=list)
    """Other phrasings of the question that should get the same answer."""
    route: str | None = None
    tenant: str | None = None


class CuratedFile(ConfigStruct):
    version: Literal[1] = 1
    answers: list[CuratedAnswer] = msgspec.field(default_factory=list)


def load_curated(path: str | Path) -> list[CuratedAnswer]:
    """Read and check a curated-answers file; every problem is reported with its path."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read curated answers `{source}`: {exc.strerror or exc}") from exc
    try:
        if file.suffix.lower() == ".jsonl":
            data: Any = [msgspec.json.decode(line) for line in text.splitlines() if line.strip()]
        elif file.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = msgspec.json.decode(text)
    except (msgspec.DecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Invalid curated answers file: {exc} ({source})", source=source) from exc
    if isinstance(data, list):
        data = {"answers": data}
    parsed = convert_section(data, CuratedFile, "$", source=source)
    issues = [
        f"Expected a non-empty `{field}`, got nothing - at `$.answers[{i}].{field}` ({source})"
        for i, item in enumerate(parsed.answers)
        for field in ("question", "answer")
        if not getattr(item, field).strip()
    ]
    if issues:
        raise ConfigError(issues, source=source)
    return parsed.answers


class _Group:
    __slots__ = ("answers", "matrix", "norms", "questions")

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.answers: list[str] = []
        self.norms: dict[str, int] = {}
        self.matrix: np.ndarray | None = None


class CuratedIndex:
    """Curated answers grouped by (tenant, route); the most specific group is asked first."""

    def __init__(self, answers: list[CuratedAnswer]) -> None:
        self._groups: dict[tuple[str | None, str | None], _Group] = {}
        for item in answers:
            group = self._groups.setdefault((item.tenant, item.route), _Group())
            for question in (item.question, *item.alternates):
                group.norms.setdefault(normalize_question(question), len(group.questions))
                group.questions.append(question)
                group.answers.append(item.answer)

    def __len__(self) -> int:
        return sum(len(g.questions) for g in self._groups.values())

    @property
    def questions(self) -> list[str]:
        return [q for g in self._groups.values() for q in g.questions]

    def attach_vectors(self, vectors: np.ndarray) -> None:
        """Vectors for :attr:`questions`, in that order (embedded once at start)."""
        start = 0
        for group in self._groups.values():
            end = start + len(group.questions)
            group.matrix = np.ascontiguousarray(vectors[start:end], dtype=np.float32)
            start = end

    def _chain(self, tenant: str | None, route: str) -> list[_Group]:
        keys = [(tenant, route), (tenant, None), (None, route), (None, None)]
        if tenant is None:
            keys = [(None, route), (None, None)]
        return [g for k in keys if (g := self._groups.get(k)) is not None]

    def searchable(self, tenant: str | None, route: str) -> bool:
        """Whether a question of ``tenant`` on ``route`` has curated questions to be compared with."""
        return any(group.matrix is not None and group.questions for group in self._chain(tenant, route))

    def match_normalized(self, tenant: str | None, route: str, norm: str) -> str | None:
        for group in self._chain(tenant, route):
            index = group.norms.get(norm)
            if index is not None:
                return group.answers[index]
        return None

    def candidates(
        self, tenant: str | None, route: str, vector: np.ndarray, k: int = 3
    ) -> list[tuple[str, str, float]]:
        """(question, answer, similarity) of the nearest curated questions, best first."""
        out: list[tuple[str, str, float]] = []
        for group in self._chain(tenant, route):
            if group.matrix is None or not len(group.questions):
                continue
            sims = group.matrix @ vector
            for i in np.argsort(-sims)[:k]:
                out.append((group.questions[i], group.answers[i], float(sims[i])))
        out.sort(key=lambda item: -item[2])
        return out[:k]


def curated_completion(answer: str, model: str | None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-curated-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
