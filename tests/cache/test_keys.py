"""Cache keys and HTTP caching headers: what is the same request, and how we say what happened."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache.helpers import ask
from tidegate.cache import build_key, cache_status, parse_directives
from tidegate.cache.keys import IGNORED_PARAMS


def key(body: dict[str, Any], tenant: str | None = "acme", route: str = "m") -> Any:
    k = build_key(body, tenant=tenant, route=route)
    assert k is not None
    return k


def test_same_request_same_keys_and_question() -> None:
    a, b = key(ask("How do I get a refund?")), key(ask("How do I get a refund?"))
    assert a == b
    assert a.question == "How do I get a refund?"


@pytest.mark.parametrize(
    ("other", "tenant", "route"),
    [
        (ask("How do I get a refund?"), "globex", "m"),  # another tenant
        (ask("How do I get a refund?"), None, "m"),  # anonymous is its own tenant
        (ask("How do I get a refund?"), "acme", "strong"),  # another route
        (ask("How do I get a refund?", system="You are Acme's bot."), "acme", "m"),
        (ask("How do I get a refund?", tools=[{"type": "function", "function": {"name": "f"}}]), "acme", "m"),
        (ask("How do I get a refund?", temperature=0.2), "acme", "m"),
        (ask("How do I get a refund?", top_p=0.5), "acme", "m"),
        (ask("How do I get a refund?", max_tokens=10), "acme", "m"),
        (ask("How do I get a refund?", seed=7), "acme", "m"),
        (ask("How do I get a refund?", response_format={"type": "json_object"}), "acme", "m"),
        (ask("How do I get a refund?", reasoning_effort="high"), "acme", "m"),  # unknown → scoped
    ],
)
def test_anything_that_changes_the_answer_changes_the_scope(other: dict[str, Any], tenant: str | None, route: str) -> None:
    base = key(ask("How do I get a refund?"))
    changed = key(other, tenant, route)
    assert changed.scope != base.scope
    assert changed.exact != base.exact
    assert changed.partition != base.partition


def test_transport_fields_do_not_change_the_key() -> None:
    base = key(ask("Hi"))
    noisy = key(ask("Hi", stream=True, stream_options={"include_usage": True}, user="u1", metadata={"a": 1}))
    assert noisy == base


def test_integer_and_float_temperatures_are_one_scope() -> None:
    assert key(ask("Hi", temperature=0)).scope == key(ask("Hi", temperature=0.0)).scope
    assert key(ask("Hi", temperature=1)).temperature == 1.0


def test_partition_is_the_conversation_before_the_question() -> None:
    history_a = [{"role": "user", "content": "Tell me about the Basic plan."}, {"role": "assistant", "content": "…"}]
    history_b = [{"role": "user", "content": "Tell me about the Pro plan."}, {"role": "assistant", "content": "…"}]
    follow_up = {"role": "user", "content": "How do I upgrade to it?"}
    a = key({"model": "m", "messages": [*history_a, follow_up]})
    b = key({"model": "m", "messages": [*history_b, follow_up]})
    single = key(ask("How do I upgrade to it?"))
    assert a.question == b.question == single.question
    assert len({a.partition, b.partition, single.partition}) == 3
    assert a.scope == b.scope == single.scope
    paraphrase = key({"model": "m", "messages": [*history_a, {"role": "user", "content": "How can I switch to it?"}]})
    assert paraphrase.partition == a.partition and paraphrase.exact != a.exact


def test_only_user_text_is_a_question() -> None:
    tool_turn = {"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42", "tool_call_id": "1"}]}
    assert key(tool_turn).question is None
    image = ask("x")
    image["messages"][0]["content"] = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:"}}]
    assert key(image).question is None
    parts = ask("x")
    parts["messages"][0]["content"] = [{"type": "text", "text": "What is"}, {"type": "text", "text": "this?"}]
    assert key(parts).question == "What is\nthis?"
    named = key({"model": "m", "messages": [{"role": "user", "content": "What's my balance?", "name": "alice"}]})
    other = key({"model": "m", "messages": [{"role": "user", "content": "What's my balance?", "name": "bob"}]})
    assert named.partition != other.partition


@pytest.mark.parametrize("body", [{"model": "m"}, {"model": "m", "messages": []}, {"model": "m", "messages": ["x"]},
                                  {"model": "m", "messages": [{"role": "user", "content": "x"}], "x": object()}])
def test_uncacheable_bodies(body: dict[str, Any]) -> None:
    assert build_key(body, tenant=None, route="m") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@given(params=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4))
def test_key_ignores_field_order_and_sees_every_other_param(params: dict[str, Any]) -> None:
    params = {k: v for k, v in params.items() if k not in ("messages", "model", "temperature", "top_p")}
    body = {**ask("q"), **params}
    reordered = dict(reversed(list(body.items())))
    assert key(body) == key(reordered)
    for name in params:
        without = {k: v for k, v in body.items() if k != name}
        if name in IGNORED_PARAMS:
            assert key(without).scope == key(body).scope
        else:
            assert key(without).scope != key(body).scope


@pytest.mark.parametrize(
    ("header", "pragma", "expected"),
    [
        (None, None, (False, False, None, False)),
        ("no-cache", None, (True, False, None, False)),
        ("No-Store", None, (False, True, None, False)),
        ("max-age=60, no-store", None, (False, True, 60.0, False)),
        ("max-age=0", None, (True, False, 0.0, False)),
        ('max-age="30"', None, (False, False, 30.0, False)),
        ("max-age=abc", None, (False, False, None, False)),
        ("only-if-cached", None, (False, False, None, True)),
        (None, "no-cache", (True, False, None, False)),
        ("private, must-revalidate", None, (False, False, None, False)),
    ],
)
def test_cache_control_directives(header: str | None, pragma: str | None, expected: tuple[Any, ...]) -> None:
    d = parse_directives(header, pragma)
    assert (d.no_cache, d.no_store, d.max_age, d.only_if_cached) == expected


def test_cache_status_spelling_follows_rfc_9211() -> None:
    assert cache_status(hit=True, ttl=539.6, detail="semantic") == "tidegate; hit; ttl=539; detail=semantic"
    assert cache_status(fwd="miss", stored=True) == "tidegate; fwd=miss; stored"
    assert cache_status(fwd="miss", collapsed=True) == "tidegate; fwd=miss; collapsed"
    assert cache_status(fwd="request", detail="no-store") == "tidegate; fwd=request; detail=no-store"
    assert cache_status(hit=True, ttl=-3) == "tidegate; hit; ttl=0"
