from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.sandbox import SecurityError

from tidegate.engine.pool import MISSING, VariablePool
from tidegate.engine.template import JinjaTemplate, Template, make_jinja_env, to_text


def test_selectors_walk_into_objects_and_arrays() -> None:
    pool = VariablePool()
    pool.set_outputs("http", {"body": {"items": [{"name": "a"}, {"name": "b"}]}, "status_code": 200})
    assert pool.get(("http", "status_code")) == 200
    assert pool.get(("http", "body", "items", "1", "name")) == "b"
    assert pool.get(("http", "body", "items", "-1", "name")) == "b"
    assert pool.get(("http", "body", "items", "7")) is MISSING
    assert pool.get(("http", "body", "nope")) is MISSING
    assert pool.get(("ghost", "x")) is MISSING
    assert pool.value(("ghost", "x")) is None


def test_child_pools_read_through_and_keep_their_own_outputs() -> None:
    root = VariablePool()
    root.set_outputs("conversation", {"n": 1})
    root.set_outputs("a", {"x": "root"})
    child = root.child()
    child.set_outputs("a", {"y": "child"})
    assert child.get(("a", "x")) == "root"  # falls through per name
    assert child.get(("a", "y")) == "child"
    assert root.get(("a", "y")) is MISSING
    assert child.scope("a") == {"x": "root", "y": "child"}
    sibling = root.child()
    assert sibling.get(("a", "y")) is MISSING
    # Writes go where the variable lives; conversation variables always to the root.
    grandchild = child.child()
    grandchild.assign(("conversation", "n"), 2)
    grandchild.assign(("a", "y"), "changed")
    assert root.get(("conversation", "n")) == 2
    assert child.get(("a", "y")) == "changed"
    assert root is grandchild.root


@pytest.mark.parametrize(
    ("value", "text"),
    [("s", "s"), (None, ""), (True, "true"), (False, "false"), (3, "3"), (2.5, "2.5"), (2.0, "2.0"),
     ({"a": "é"}, '{"a": "é"}'), ([1, "x"], '[1, "x"]')],
)
def test_to_text(value: object, text: str) -> None:
    assert to_text(value) == text


def test_template_render() -> None:
    pool = VariablePool()
    pool.set_outputs("start", {"name": "Ada", "n": 3})
    pool.set_outputs("sys", {"query": "hi"})
    template = Template("Hello {{#start.name#}} ({{#start.n#}}) {{#sys.query#}} {{#missing.x#}}!")
    assert template.selectors == (("start", "name"), ("start", "n"), ("sys", "query"), ("missing", "x"))
    assert template.render(pool) == "Hello Ada (3) hi !"
    assert Template("plain").render(pool) == "plain"


@given(st.text(max_size=30), st.text(max_size=10))
def test_template_literals_survive(prefix: str, value: str) -> None:
    pool = VariablePool()
    pool.set_outputs("n", {"v": value})
    assert Template(prefix + "{{#n.v#}}").render(pool) == prefix + value


def test_jinja_is_sandboxed_and_capped() -> None:
    env = make_jinja_env()
    expr = JinjaTemplate("{{ x.__class__.__mro__ }}", [("x", ("s", "x"))], env)
    with pytest.raises(SecurityError):
        expr.render_inline({"x": "a"})
    big = JinjaTemplate("{{ 'a' * n }}", [("n", ("s", "n"))], env)
    assert big.render_inline({"n": 3}) == "aaa"
    with pytest.raises(SecurityError, match="1,000,000"):
        big.render_inline({"n": 10**8})
    power = JinjaTemplate("{{ 2 ** n }}", [("n", ("s", "n"))], env)
    with pytest.raises(SecurityError, match="exponent"):
        power.render_inline({"n": 10**6})
    mutate = JinjaTemplate("{{ xs.append(1) }}", [("xs", ("s", "xs"))], env)
    with pytest.raises(SecurityError):
        mutate.render_inline({"xs": []})


def test_jinja_loops_are_isolated_and_syntax_errors_are_values() -> None:
    env = make_jinja_env()
    assert not JinjaTemplate("{{ a | upper }}", [], env).isolated
    assert JinjaTemplate("{% for i in xs %}{{ i }}{% endfor %}", [], env).isolated
    assert JinjaTemplate("{% macro m() %}x{% endmacro %}{{ m() }}", [], env).isolated
    with pytest.raises(ValueError, match=r"^Expected a valid Jinja2 template, got a syntax error at line 1: "):
        JinjaTemplate("{{ a ", [], env)
