from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.routing.scorer import DEFAULT_WEIGHTS, Scorer


def body(text: str, **extra: object) -> dict[str, object]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


scorer = Scorer()


def test_small_talk_scores_low_and_hard_work_scores_high() -> None:
    easy = scorer.score(body("Hi! How are you today?"))
    faq = scorer.score(body("What are your opening hours on Sunday?"))
    hard = scorer.score(
        body(
            "Prove step by step that the sum of the first n odd numbers is n^2, then derive a closed "
            "form for the sum of squares and explain why the induction argument is rigorous."
        )
    )
    code = scorer.score(
        body(
            "Refactor this Python function to be thread-safe and explain the trade-offs:\n```python\n"
            "def add(cache, key, value):\n    if key not in cache:\n        cache[key] = value\n"
            "    return cache[key]\n```"
        )
    )
    assert easy.value < 0.2 and faq.value < 0.2
    assert hard.value > 0.6 and code.value > 0.6
    assert easy.value < faq.value + 0.2 < hard.value


def test_signals_explain_the_score() -> None:
    result = scorer.score(body("Explain why quicksort is O(n log n) on average, step by step."))
    names = [name for name, _ in result.signals]
    assert "reasoning" in names
    contributions = [abs(weight) for _, weight in result.signals]
    assert contributions == sorted(contributions, reverse=True)
    assert result.explain().startswith(names[0])
    assert sum(w for _, w in result.signals) + DEFAULT_WEIGHTS["base"] == pytest.approx(
        result.value
    )


def test_length_depth_tools_language_and_structure_raise_the_score() -> None:
    short = scorer.score(body("Summarize this.")).value
    long = scorer.score(body("Summarize this. " + "The committee met to review the budget. " * 80))
    assert long.value > short and dict(long.signals)["length"] > 0.25
    convo = {
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
        ]
        * 4
    }
    assert "depth" in dict(scorer.score(convo).signals)
    tools = scorer.score(body("Book a table", tools=[{"type": "function"}]))
    assert "tools" in dict(tools.signals)
    structured = scorer.score(body("List three fruits", response_format={"type": "json_schema"}))
    assert "structured" in dict(structured.signals)
    chinese = scorer.score(body("请用三句话解释一下为什么天空是蓝色的"))
    assert "language" in dict(chinese.signals)


def test_content_parts_and_last_user_message_are_used() -> None:
    parts = {
        "messages": [
            {
                "role": "user",
                "content": "Prove the theorem rigorously, step by step, and derive the bound.",
            },
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "thanks!"}]},
        ]
    }
    result = scorer.score(parts)
    assert "reasoning" not in dict(result.signals)
    assert "depth" in dict(result.signals)


def test_weights_override_and_validation() -> None:
    custom = Scorer({"code": 0.0, "base": 0.5})
    text = body("def f(x): return x; class A: pass; import os; lambda y: y")
    assert "code" in dict(scorer.score(text).signals)
    assert custom.score(body("hello")).value == pytest.approx(0.35)
    assert dict(custom.score(text).signals).get("code", 0.0) == 0.0
    with pytest.raises(ValueError, match="Expected a signal name"):
        Scorer({"vibes": 1.0})


def test_garbage_bodies_do_not_crash() -> None:
    assert scorer.score({}).value == pytest.approx(DEFAULT_WEIGHTS["base"])
    assert scorer.score({"messages": "nope"}).value >= 0.0
    assert scorer.score({"messages": [None, 3, {"role": "user", "content": None}]}).value >= 0.0


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=3000), turns=st.integers(1, 20))
def test_score_always_in_unit_interval(text: str, turns: int) -> None:
    messages = [{"role": "user", "content": text}] * turns
    result = scorer.score({"messages": messages})
    assert 0.0 <= result.value <= 1.0
    for name, _ in result.signals:
        assert name in DEFAULT_WEIGHTS


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=500))
def test_appending_hard_cues_never_lowers_the_score(text: str) -> None:
    base = scorer.score(body(text)).value
    harder = scorer.score(
        body(text + "\nExplain why, step by step, and prove it rigorously.")
    ).value
    # "simple" can only switch off and length only grows, so the score cannot drop
    assert harder >= base - 1e-9
