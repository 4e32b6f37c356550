from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidegate.errors import ConfigError
from tidegate.routing.calibration import calibrate, evaluate, load_labeled, threshold_for_share
from tidegate.routing.scorer import Scorer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "router_eval"


def test_perfect_router_needs_exactly_the_hard_share() -> None:
    scores = [0.9, 0.8, 0.1, 0.2, 0.05]
    labels = [False, False, True, True, True]  # two prompts need the strong model
    result = evaluate(scores, labels)
    assert result.light_ok_share == pytest.approx(0.6)
    assert result.quality_at(0.0) == pytest.approx(0.6)
    assert result.quality_at(0.4) == pytest.approx(1.0)
    assert result.share_for_95 == pytest.approx(
        0.2 + 0.2 * 0.75
    )  # interpolated within the 2nd step
    assert result.curve[-1].quality_retained == pytest.approx(1.0)


def test_constant_scores_are_no_better_than_random() -> None:
    labels = [True] * 6 + [False] * 4
    result = evaluate([0.5] * 10, labels)
    assert result.share_for_95 == pytest.approx(result.random_share_for_95, abs=1e-9)
    assert result.auc == pytest.approx((1 + 0.6) / 2)


def test_inverted_router_is_worse_than_random() -> None:
    labels = [True] * 6 + [False] * 4
    result = evaluate([0.9] * 6 + [0.1] * 4, labels)
    assert result.share_for_95 > result.random_share_for_95


def test_threshold_for_share() -> None:
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    t = threshold_for_share(scores, 0.3)
    assert sum(s >= t for s in scores) == 3
    assert sum(s >= threshold_for_share(scores, 0.0) for s in scores) == 0
    assert sum(s >= threshold_for_share(scores, 1.0) for s in scores) == 10
    with pytest.raises(ValueError):
        threshold_for_share(scores, 1.5)


def test_calibrate_hits_the_target_share(tmp_path: Path) -> None:
    path = tmp_path / "labeled.jsonl"
    rows = [{"prompt": "hi", "light_ok": True}] * 3 + [
        {
            "prompt": f"Prove step by step theorem {i} rigorously and derive the bound",
            "light_ok": False,
        }
        for i in range(2)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = calibrate(path, 0.4)
    assert result.strong_share == pytest.approx(0.4)
    assert result.quality_retained == pytest.approx(1.0)
    assert "score_below" in result.describe()


def test_load_labeled_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"prompt": "ok", "light_ok": true}\n{"prompt": "x"}\n{"light_ok": false}\nnot json\n'
    )
    with pytest.raises(ConfigError) as info:
        load_labeled(path)
    issues = info.value.issues
    assert len(issues) == 3
    assert "line 2" in issues[0] and "light_ok" in issues[0]
    assert issues[1].startswith("Expected `prompt` or `messages`, got neither - at line 3")
    assert "line 4" in issues[2]
    with pytest.raises(ConfigError, match="Cannot read"):
        load_labeled(tmp_path / "missing.jsonl")


def test_shipped_eval_set_is_big_varied_and_split() -> None:
    train = load_labeled(EXAMPLES / "train.jsonl")
    held = load_labeled(EXAMPLES / "heldout.jsonl")
    assert len(train) + len(held) >= 300
    assert len(held) >= 100
    texts = [e.text() for e in train]
    assert not set(texts) & {e.text() for e in held}  # no leakage between the splits
    for split in (train, held):
        share = sum(e.light_ok for e in split) / len(split)
        assert 0.35 < share < 0.75
        assert len({e.category for e in split}) >= 20
    assert any(e.messages for e in held) and any(e.messages for e in train)


def test_rules_beat_random_on_the_held_out_split() -> None:
    held = load_labeled(EXAMPLES / "heldout.jsonl")
    scorer = Scorer()
    result = evaluate([scorer.score(e.body()).value for e in held], [e.light_ok for e in held])
    assert result.share_for_95 < result.random_share_for_95 - 0.2
