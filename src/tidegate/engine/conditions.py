"""Dify's comparison operators, shared by if-else cases and loop break conditions.

Each condition compares the variable at a selector with an expected value (a ``{{#…#}}`` template,
a list or a boolean). Semantics follow Dify: a missing value fails most tests instead of raising,
numbers compare numerically whatever the expected value's spelling, and a comparison that cannot
apply to the value's type (``>`` on a string) is an error of the node, not ``False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from .nodes.base import NodeFailure
from .pool import MISSING, VariablePool
from .template import Template

__all__ = ["OPERATORS", "Condition", "ConditionData", "evaluate", "evaluate_all"]

_ALIASES = {"!=": "≠", ">=": "≥", "<=": "≤", "==": "=", "not exist": "not exists", "startswith": "start with",
            "endswith": "end with"}  # fmt: skip
_UNARY = frozenset({"empty", "not empty", "null", "not null", "exists", "not exists"})


class SubConditionData(msgspec.Struct):
    key: str = ""
    comparison_operator: str = "contains"
    value: Any = None


class SubVariableCondition(msgspec.Struct):
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[SubConditionData] = msgspec.field(default_factory=list)


class ConditionData(msgspec.Struct):
    variable_selector: list[str] = msgspec.field(default_factory=list)
    comparison_operator: str = "="
    value: Any = None
    varType: str | None = None
    sub_variable_condition: SubVariableCondition | None = None


class Condition:
    """A compiled condition: selector, canonical operator, and the expected value's template."""

    __slots__ = ("expected", "operator", "selector", "sub", "template")

    def __init__(self, data: ConditionData) -> None:
        operator = _ALIASES.get(data.comparison_operator, data.comparison_operator)
        if operator not in OPERATORS:
            raise ValueError(
                f"Expected a comparison operator ({', '.join(OPERATORS)}), got `{data.comparison_operator}`"
            )
        self.selector = tuple(data.variable_selector)
        self.operator = operator
        self.expected = data.value
        self.template = Template(data.value) if isinstance(data.value, str) else None
        self.sub = data.sub_variable_condition

    def check(self, pool: VariablePool) -> bool:
        actual = pool.get(self.selector) if len(self.selector) >= 2 else MISSING
        if actual is MISSING:
            if self.operator in ("null", "not exists", "empty"):
                return True
            if self.operator in ("not null", "exists", "not empty"):
                return False
            raise NodeFailure(f"variable {'.'.join(self.selector)} not found", error_type="VariableNotFound")
        if self.sub is not None and self.operator in ("contains", "not contains", "all of") and _is_files(actual):
            return _check_files(actual if isinstance(actual, list) else [], self.sub)
        expected = self.template.render(pool) if self.template is not None else self.expected
        try:
            return bool(evaluate(self.operator, actual, expected))
        except (TypeError, ValueError) as exc:
            raise NodeFailure(f"cannot compare {'.'.join(self.selector)}: {exc}", error_type="ConditionError") from None


def evaluate_all(conditions: Sequence[Condition], operator: str, pool: VariablePool) -> bool:
    """``and`` / ``or`` over conditions with short-circuit; no conditions is true for ``and``."""
    if operator == "or":
        return any(c.check(pool) for c in conditions)
    return all(c.check(pool) for c in conditions)


def evaluate(operator: str, actual: Any, expected: Any) -> bool:
    if operator in _UNARY:
        return bool(_UNARY_TESTS[operator](actual))
    if isinstance(actual, bool) or (isinstance(actual, list) and actual and all(isinstance(a, bool) for a in actual)):
        expected = _to_bool(expected)
    return bool(_BINARY_TESTS[operator](actual, expected))


def _contains(actual: Any, expected: Any) -> bool:
    if not actual:
        return False
    if isinstance(actual, str):
        return str(expected) in actual
    if isinstance(actual, list | tuple):
        return expected in actual
    raise TypeError("`contains` needs a string or an array")


def _starts(actual: Any, expected: Any) -> bool:
    if not actual:
        return False
    if not isinstance(actual, str):
        raise TypeError("`start with` needs a string")
    return actual.startswith(str(expected))


def _ends(actual: Any, expected: Any) -> bool:
    if not actual:
        return False
    if not isinstance(actual, str):
        raise TypeError("`end with` needs a string")
    return actual.endswith(str(expected))


def _is(actual: Any, expected: Any) -> bool:
    if actual is None:
        return False
    if not isinstance(actual, str | bool):
        raise TypeError("`is` needs a string or a boolean")
    return bool(actual == expected)


def _number(expected: Any, like: Any) -> int | float:
    if isinstance(expected, bool):
        return int(expected)
    if isinstance(expected, int | float):
        return expected
    if isinstance(expected, str):
        number = float(expected.strip())
        return int(number) if isinstance(like, int) and number.is_integer() else number
    raise TypeError(f"cannot read {expected!r} as a number")


def _compare(test: str) -> Any:
    def check(actual: Any, expected: Any) -> bool:
        if actual is None:
            return False
        if isinstance(actual, bool):
            if test == "=":
                return bool(actual == _to_bool(expected))
            if test == "≠":
                return bool(actual != _to_bool(expected))
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            raise TypeError(f"`{test}` needs a number")
        other = _number(expected, actual)
        return {
            "=": actual == other, "≠": actual != other, ">": actual > other,
            "<": actual < other, "≥": actual >= other, "≤": actual <= other,
        }[test]  # fmt: skip

    return check


def _in(actual: Any, expected: Any) -> bool:
    if actual is None:
        return False
    if not isinstance(expected, list | tuple):
        raise TypeError("`in` needs an array of expected values")
    return actual in expected


def _all_of(actual: Any, expected: Any) -> bool:
    if not actual:
        return False
    if not isinstance(expected, list | tuple):
        raise TypeError("`all of` needs an array of expected values")
    if not isinstance(actual, list | tuple | str):
        return False
    return all(item in actual for item in expected)


def _to_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and not isinstance(value, bool):
        return bool(value)
    if isinstance(value, list):
        return [_to_bool(item) for item in value]
    return value


def _is_files(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value) and bool(value)


def _check_files(files: list[dict[str, Any]], sub: SubVariableCondition) -> bool:
    results = []
    for cond in sub.conditions:
        op = _ALIASES.get(cond.comparison_operator, cond.comparison_operator)
        values = [f.get(cond.key) for f in files]
        expected = cond.value
        if cond.key == "extension":
            expected = expected if not expected or str(expected).startswith(".") else f".{expected}"
            values = [v if not v or str(v).startswith(".") else f".{v}" for v in values]
        per_file = [evaluate(op, v, expected) for v in values]
        results.append(all(per_file) if "not" in op else any(per_file))
    return all(results) if sub.logical_operator == "and" else any(results)


_UNARY_TESTS = {
    "empty": lambda a: not a,
    "not empty": lambda a: bool(a),
    "null": lambda a: a is None,
    "not null": lambda a: a is not None,
    "exists": lambda a: a is not None,
    "not exists": lambda a: a is None,
}
_BINARY_TESTS: dict[str, Any] = {
    "contains": _contains,
    "not contains": lambda a, e: not _contains(a, e) if a else True,
    "start with": _starts,
    "end with": _ends,
    "is": _is,
    "is not": lambda a, e: False if a is None else not _is(a, e),
    "=": _compare("="),
    "≠": _compare("≠"),
    ">": _compare(">"),
    "<": _compare("<"),
    "≥": _compare("≥"),
    "≤": _compare("≤"),
    "in": _in,
    "not in": lambda a, e: True if a is None else not _in(a, e),
    "all of": _all_of,
}
OPERATORS: tuple[str, ...] = (*_BINARY_TESTS, *_UNARY_TESTS)
