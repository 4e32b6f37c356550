"""Templates: Dify's ``{{#node.var#}}`` text and sandboxed Jinja2, both compiled once at load.

A ``{{#…#}}`` template renders by joining its literal parts with the text of each variable. A
Jinja2 template (template-transform, ``edition_type: jinja2`` prompts) compiles in an immutable
sandbox with size caps on ``*`` and ``**``; one with loops or macros can run unboundedly long, so
it is marked ``isolated`` and rendered in the code sandbox process, where CPU and wall time are
limited and a runaway render is killed instead of stalling the event loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..dsl.refs import Segment, Selector, parse_template
from .pool import VariablePool

__all__ = ["JinjaTemplate", "Template", "make_jinja_env", "to_text"]

MAX_SEQUENCE = 1_000_000
"""Largest string or list one Jinja ``*`` may build."""


def to_text(value: Any) -> str:
    """How a variable reads inside text: strings as-is, containers as JSON, None as nothing."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class Template:
    """A ``{{#node.var#}}`` template, split into literal text and selectors at load."""

    __slots__ = ("segments", "selectors", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.segments: tuple[Segment, ...] = parse_template(source)
        self.selectors: tuple[Selector, ...] = tuple(s for s in self.segments if isinstance(s, tuple))

    def render(self, pool: VariablePool) -> str:
        if not self.selectors:
            return self.source
        return "".join(
            part if isinstance(part, str) else to_text(pool.value(part)) for part in self.segments
        )

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class _LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus caps on the two operators that can allocate without bound."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 1024:
            raise SecurityError("exponent too large in template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_SEQUENCE:
                        raise SecurityError("template tried to build a value over 1,000,000 items")
        return super().call_binop(context, operator, left, right)


def make_jinja_env() -> ImmutableSandboxedEnvironment:
    """One environment per compiled workflow (its caches are per workflow, nothing global)."""
    return _LimitedSandbox(autoescape=False, keep_trailing_newline=True)


class JinjaTemplate:
    """A Jinja2 template plus the selectors of the variables it is rendered with."""

    __slots__ = ("isolated", "source", "template", "variables")

    def __init__(
        self,
        source: str,
        variables: Iterable[tuple[str, Selector]],
        env: ImmutableSandboxedEnvironment,
    ) -> None:
        """Raises :class:`ValueError` with a user-facing message when the template is invalid."""
        self.source = source
        self.variables: tuple[tuple[str, Selector], ...] = tuple(variables)
        try:
            parsed = env.parse(source)
            self.template = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise ValueError(
                f"Expected a valid Jinja2 template, got a syntax error at line {exc.lineno}: {exc.message}"
            ) from None
        self.isolated = any(True for _ in parsed.find_all((nodes.For, nodes.Macro, nodes.CallBlock)))

    def context(self, pool: VariablePool) -> dict[str, Any]:
        return {name: pool.value(selector) for name, selector in self.variables}

    def render_inline(self, context: dict[str, Any]) -> str:
        """Render on the calling thread; only for templates that are not ``isolated``."""
        return self.template.render(context)


def selectors_of(templates: Sequence[Template]) -> tuple[Selector, ...]:
    return tuple(s for t in templates for s in t.selectors)
