"""Tool descriptions from Python signatures: JSON schema for the model, a checked decoder for calls.

Writing a JSON schema by hand for every Python tool duplicates the signature and drifts from it.
We build one ``msgspec`` Struct per function from its type hints (docstring lines become field
descriptions, as MCP servers do): the Struct's JSON schema is what the model sees, and the same
Struct converts the model's arguments, so a wrong type comes back as a precise observation
(``Expected `int`, got `str` - at `$.order_id```) the model can correct, instead of a crash.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

__all__ = ["ArgumentsError", "CallableSchema", "describe_callable", "parse_docstring", "type_hints"]

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$", re.IGNORECASE)
_OTHER_SECTION = re.compile(r"^\s*(Returns?|Raises|Yields|Examples?|Notes?|See Also)\s*:?\s*$", re.IGNORECASE)
_GOOGLE_ARG = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ARG = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")


class ArgumentsError(ValueError):
    """The model's arguments do not fit the tool's schema; the message names the field."""


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (text before any section) and per-parameter descriptions.

    Understands Google (``Args:`` with ``name (type): text``), Sphinx (``:param name: text``)
    and NumPy (``Parameters`` underlined, ``name : type`` then indented text) styles.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    mode = "summary"
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() in ("Parameters", "Args") and _NUMPY_RULE.match(following):
            mode, current = "numpy", None
            continue
        if _SECTION.match(line):
            mode, current = "args", None
            continue
        if _NUMPY_RULE.match(line):
            continue
        if _OTHER_SECTION.match(line) or (line.strip() and _NUMPY_RULE.match(following)):
            mode, current = "other", None
            continue
        sphinx = _SPHINX_ARG.match(line)
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            mode = "args"
            continue
        if line.lstrip().startswith(":"):
            mode, current = "other", None
            continue
        if mode == "summary":
            summary.append(line)
        elif mode == "numpy":
            head = _GOOGLE_ARG.match(line)
            if head and not line[:1].isspace():
                current = head.group(1)
                params[current] = ""
            elif line.strip() and current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
        elif mode == "args":
            indent = len(line) - len(line.lstrip())
            google = _GOOGLE_ARG.match(line)
            if google and (current is None or indent <= _indent_of(lines, current)):
                current = google.group(1)
                params[current] = google.group(2).strip()
            elif line.strip() and current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
    text = "\n".join(summary).strip()
    first_paragraph = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first_paragraph, params


def _indent_of(lines: list[str], name: str) -> int:
    for line in lines:
        match = _GOOGLE_ARG.match(line)
        if match and match.group(1) == name:
            return len(line) - len(line.lstrip())
    return 0


class CallableSchema:
    """A function's description, argument schema and argument converter."""

    __slots__ = ("_args", "_fields", "description", "parameters")

    def __init__(self, description: str, parameters: dict[str, Any], args: type[msgspec.Struct]) -> None:
        self.description = description
        self.parameters = parameters
        self._args = args
        self._fields = args.__struct_fields__

    def convert(self, arguments: object) -> dict[str, Any]:
        """Keyword arguments for the function, checked and converted (``"3"`` stays a string)."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ArgumentsError(f"Expected the arguments to be a JSON object, got `{type(arguments).__name__}`")
        try:
            value = msgspec.convert(arguments, self._args, strict=False)
        except msgspec.ValidationError as exc:
            raise ArgumentsError(str(exc)) from None
        return {name: getattr(value, name) for name in self._fields}


def describe_callable(
    fn: Callable[..., Any], *, description: str | None = None, hidden: tuple[type, ...] = ()
) -> CallableSchema:
    """Schema of ``fn``'s keyword-callable parameters (``*args``/``**kwargs`` are not exposed,
    nor parameters annotated with one of the ``hidden`` types, which the caller injects)."""
    summary, docs = parse_docstring(inspect.getdoc(fn))
    hints = type_hints(fn)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        tp = hints.get(name, Any)
        if isinstance(tp, type) and issubclass(tp, hidden):
            continue
        if docs.get(name):
            tp = Annotated[tp, msgspec.Meta(description=docs[name])]
        if param.default is inspect.Parameter.empty:
            fields.append((name, tp))
        else:
            fields.append((name, tp, param.default))
    title = "".join(part.capitalize() for part in re.split(r"\W+", getattr(fn, "__name__", "tool")) if part)
    args = msgspec.defstruct(
        f"{title or 'Tool'}Arguments", fields, kw_only=True, forbid_unknown_fields=True
    )
    return CallableSchema(description or summary, _inline_root(msgspec.json.schema(args)), args)


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of a function or callable object (empty when they cannot resolve)."""
    target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else getattr(fn, "__call__", fn)  # noqa: B004
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError, AttributeError):
        return {}


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec puts every struct under ``$defs``; the model wants the object itself at the root."""
    defs = dict(schema.get("$defs", {}))
    ref = schema.get("$ref", "")
    root = dict(defs.pop(ref.rsplit("/", 1)[-1], schema)) if ref else dict(schema)
    root.pop("title", None)
    root.setdefault("properties", {})
    root.setdefault("required", [])
    if defs:
        root["$defs"] = defs
    return root
