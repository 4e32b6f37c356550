"""Cascade checks: is the light model's answer good enough to return, or do we escalate?

Each check looks only at the finished ``chat.completion`` and the request that asked for it, so
the cost of a cascade is the light call itself; a failed check names itself so the debug header
and the escalation metric say why the strong model was called.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from .jsonschema import first_error

__all__ = ["DEFAULT_REFUSALS", "CascadeRule", "failed_check"]

DEFAULT_REFUSALS: tuple[str, ...] = (
    r"\bi (?:do not|don't|dont) know\b",
    r"\bi(?:'m| am) not (?:sure|certain|able)\b",
    r"\bi (?:can ?not|can't|cannot|am unable to|'m unable to|am not able to) (?:help|answer|assist|"
    r"provide|do that|determine|comply)",
    r"\bi (?:don't|do not) have (?:enough )?(?:information|access|the ability)",
    r"\bas an ai(?: language model)?\b",
    r"\bi'?m sorry,? but i\b",
    r"\bbeyond my (?:knowledge|capabilit)",
)
"""Refusal and "I don't know" patterns, matched case-insensitively near the start of an answer."""

_REFUSAL_WINDOW = 300
"""Refusals come first; a long answer that mentions "I don't know" in passing is not one."""


class CascadeRule:
    """A compiled ``cascade`` entry: escalate ``source`` → ``target`` when a check fails."""

    __slots__ = ("checks", "refusal", "source", "target")

    def __init__(
        self,
        source: str,
        target: str,
        checks: Iterable[str] = ("empty", "refusal", "json_schema", "length"),
        *,
        refusal_patterns: Sequence[str] = (),
    ) -> None:
        self.source = source
        self.target = target
        self.checks = tuple(checks)
        self.refusal = re.compile("|".join([*DEFAULT_REFUSALS, *refusal_patterns]), re.IGNORECASE)

    def __repr__(self) -> str:
        return f"CascadeRule({self.source!r} -> {self.target!r}, checks={self.checks!r})"

    def failed(self, body: Mapping[str, Any], response: Mapping[str, Any]) -> str | None:
        return failed_check(body, response, self.checks, self.refusal)


def failed_check(
    body: Mapping[str, Any],
    response: Mapping[str, Any],
    checks: Sequence[str],
    refusal: re.Pattern[str],
) -> str | None:
    """The name of the first check the answer fails, or None when it may be returned as is."""
    choices = response.get("choices")
    choice: dict[str, Any] = {}
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
    found = choice.get("message")
    message: dict[str, Any] = found if isinstance(found, dict) else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    has_tools = bool(message.get("tool_calls") or message.get("function_call"))
    for check in checks:
        if check == "empty":
            if not text.strip() and not has_tools:
                return "empty"
        elif check == "length":
            if choice.get("finish_reason") == "length":
                return "length"
        elif check == "refusal":
            if message.get("refusal") or refusal.search(text[:_REFUSAL_WINDOW]) is not None:
                return "refusal"
        elif check == "json_schema":
            if not has_tools and _json_fails(body.get("response_format"), text):
                return "json_schema"
    return None


def _json_fails(response_format: object, text: str) -> bool:
    if not isinstance(response_format, dict):
        return False
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return False
    try:  # strict: a fenced or prefixed answer would break the client's own JSON parsing too
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return True
    if kind == "json_object":
        return not isinstance(value, dict)
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return first_error(value, schema) is not None if schema is not None else False
