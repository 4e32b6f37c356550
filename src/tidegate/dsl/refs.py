"""Variable references in DSL text: ``{{#node_id.var.path#}}`` and selector arrays.

A selector is a tuple ``(owner, name, *path)`` where owner is a node id or one of the reserved
scopes ``sys``, ``env`` and ``conversation``. Templates are split once, at load, into literal text
and selectors, so rendering on the request path is a join.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "REFERENCE",
    "RESERVED_SCOPES",
    "SYSTEM_VARIABLES",
    "Segment",
    "Selector",
    "iter_references",
    "parse_template",
    "selector_text",
]

Selector = tuple[str, ...]
Segment = str | Selector

REFERENCE = re.compile(r"\{\{#([A-Za-z0-9_]{1,50}(?:\.[A-Za-z_][A-Za-z0-9_]{0,29}){1,10})#\}\}")
RESERVED_SCOPES = frozenset({"sys", "env", "conversation"})
SYSTEM_VARIABLES = frozenset(
    {
        "query",
        "files",
        "conversation_id",
        "user_id",
        "dialogue_count",
        "app_id",
        "workflow_id",
        "workflow_run_id",
    }
)

# Keys whose value is one selector array, wherever they appear in a node's data.
_SELECTOR_KEYS = frozenset(
    {
        "value_selector",
        "variable_selector",
        "query_variable_selector",
        "iterator_selector",
        "output_selector",
        "assigned_variable_selector",
        "input_variable_selector",
    }
)
# Free text that is not a `{{#…#}}` template (code, Jinja, UI strings).
_NOT_TEMPLATES = frozenset({"code", "title", "desc", "jinja2_text", "template", "selected"})


def parse_template(text: str) -> tuple[Segment, ...]:
    """Split a template into literal strings and selectors, in order."""
    segments: list[Segment] = []
    position = 0
    for match in REFERENCE.finditer(text):
        if match.start() > position:
            segments.append(text[position : match.start()])
        segments.append(tuple(match.group(1).split(".")))
        position = match.end()
    if position < len(text):
        segments.append(text[position:])
    return tuple(segments)


def selector_text(selector: Selector | list[str]) -> str:
    return "{{#" + ".".join(selector) + "#}}"


def iter_references(data: Any, path: str, node_type: str = "") -> Iterator[tuple[Selector, str]]:
    """Every selector a node's data refers to, with the path where it is written.

    Walks the data generically (templates in any string, selector arrays under the usual keys),
    plus the few places where a selector hides under a generic key: aggregator ``variables``,
    extractor ``query``, assigner items and loop variables whose input is a variable.
    """
    if isinstance(data, str):
        for match in REFERENCE.finditer(data):
            yield tuple(match.group(1).split(".")), path
        return
    if isinstance(data, list):
        for index, item in enumerate(data):
            yield from iter_references(item, f"{path}[{index}]", node_type)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        at = f"{path}.{key}"
        if key in _NOT_TEMPLATES and isinstance(value, str):
            continue
        if key in _SELECTOR_KEYS:
            if _is_selector(value):
                yield tuple(value), at
            continue
        if key == "variables" and node_type in ("variable-aggregator", "variable-assigner"):
            for index, item in enumerate(value or []):
                if _is_selector(item):
                    yield tuple(item), f"{at}[{index}]"
            continue
        if key == "query" and node_type == "parameter-extractor":
            if _is_selector(value):
                yield tuple(value), at
            continue
        if key == "value" and (data.get("input_type") == "variable" or data.get("value_type") == "variable"):
            if _is_selector(value):
                yield tuple(value), at
            continue
        if key == "file" and isinstance(value, list) and _is_selector(value):
            yield tuple(value), at
            continue
        yield from iter_references(value, at, node_type)


def _is_selector(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) >= 2
        and all(isinstance(part, str) and part for part in value)
    )
