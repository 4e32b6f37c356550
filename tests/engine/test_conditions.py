from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.engine.conditions import OPERATORS, Condition, ConditionData, evaluate, evaluate_all
from tidegate.engine.nodes.base import NodeFailure
from tidegate.engine.pool import VariablePool

CASES: list[tuple[str, Any, Any, bool]] = [
    ("contains", "hello world", "lo w", True),
    ("contains", ["a", "b"], "b", True),
    ("contains", "", "x", False),
    ("contains", None, "x", False),
    ("not contains", "hello", "z", True),
    ("not contains", ["a"], "a", False),
    ("not contains", None, "a", True),
    ("start with", "hello", "he", True),
    ("start with", "hello", "lo", False),
    ("end with", "hello", "lo", True),
    ("is", "abc", "abc", True),
    ("is", "abc", "ab", False),
    ("is", True, "true", True),
    ("is", None, "x", False),
    ("is not", "abc", "x", True),
    ("is not", None, "x", False),
    ("empty", "", None, True),
    ("empty", [], None, True),
    ("empty", "x", None, False),
    ("not empty", [1], None, True),
    ("=", 3, "3", True),
    ("=", 3, "3.0", True),
    ("=", 2.5, "2.5", True),
    ("=", True, "1", True),
    ("≠", 3, "4", True),
    (">", 10, "9.5", True),
    (">", None, "1", False),
    ("<", 1, 2, True),
    ("≥", 2, "2", True),
    ("≤", 2, "1", False),
    ("null", None, None, True),
    ("not null", 0, None, True),
    ("in", "b", ["a", "b"], True),
    ("in", "c", ["a", "b"], False),
    ("not in", "c", ["a", "b"], True),
    ("all of", ["a", "b", "c"], ["a", "c"], True),
    ("all of", ["a"], ["a", "z"], False),
    ("exists", 0, None, True),
    ("not exists", None, None, True),
]


def test_every_operator_is_covered() -> None:
    assert {case[0] for case in CASES} == set(OPERATORS)


@pytest.mark.parametrize(("op", "actual", "expected", "result"), CASES)
def test_operator_semantics(op: str, actual: Any, expected: Any, result: bool) -> None:
    assert evaluate(op, actual, expected) is result


@pytest.mark.parametrize(("op", "actual", "expected"), [(">", "text", "1"), ("start with", 5, "5"), ("in", "a", "a"),
                                                        ("is", 3, "3"), ("=", "x", "1")])
def test_type_mismatches_are_errors(op: str, actual: Any, expected: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        evaluate(op, actual, expected)


@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_numeric_comparisons_match_python(a: int, b: int) -> None:
    for op, fn in ((">", a > b), ("<", a < b), ("≥", a >= b), ("≤", a <= b), ("=", a == b), ("≠", a != b)):
        assert evaluate(op, a, str(b)) is fn


def test_conditions_render_templates_and_short_circuit() -> None:
    pool = VariablePool()
    pool.set_outputs("start", {"a": 5, "limit": 3, "name": "bob"})
    over = Condition(ConditionData(variable_selector=["start", "a"], comparison_operator=">", value="{{#start.limit#}}"))
    name = Condition(ConditionData(variable_selector=["start", "name"], comparison_operator="is", value="bob"))
    broken = Condition(ConditionData(variable_selector=["start", "ghost"], comparison_operator="=", value="1"))
    assert over.check(pool) is True
    assert evaluate_all([over, name], "and", pool) is True
    assert evaluate_all([over, broken], "or", pool) is True  # never reaches the broken one
    with pytest.raises(NodeFailure, match=r"variable start\.ghost not found"):
        evaluate_all([name, broken], "and", pool)
    assert evaluate_all([], "and", pool) is True


def test_aliases_and_unknown_operators() -> None:
    assert Condition(ConditionData(variable_selector=["a", "b"], comparison_operator=">=")).operator == "≥"
    with pytest.raises(ValueError, match=r"^Expected a comparison operator \(contains, "):
        Condition(ConditionData(variable_selector=["a", "b"], comparison_operator="~="))


def test_file_sub_conditions() -> None:
    pool = VariablePool()
    pool.set_outputs("start", {"files": [{"extension": "pdf", "type": "document"}, {"extension": ".png", "type": "image"}]})
    data = {
        "variable_selector": ["start", "files"], "comparison_operator": "contains",
        "sub_variable_condition": {"logical_operator": "and",
                                   "conditions": [{"key": "extension", "comparison_operator": "is", "value": "png"}]},
    }
    cond = Condition(msgspec.convert(data, ConditionData))
    assert cond.check(pool) is True
