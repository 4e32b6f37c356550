from __future__ import annotations

from typing import Any

import pytest

from tidegate.config import ModelConfig, TidegateConfig, convert_section
from tidegate.config.routing import RoutingConfig, validate_routing
from tidegate.errors import ConfigError

ROOT = TidegateConfig(
    models={
        "light": ModelConfig(url="http://127.0.0.1:1/v1"),
        "light-b": ModelConfig(url="http://127.0.0.1:2/v1"),
        "strong": ModelConfig(url="http://127.0.0.1:3/v1"),
        "embed": ModelConfig(url="http://127.0.0.1:4/v1", kind="embeddings"),
    }
)


def routing(data: dict[str, Any]) -> RoutingConfig:
    return convert_section(data, RoutingConfig, "$.routing")


def test_design_example_parses_and_validates() -> None:
    cfg = routing(
        {
            "tiers": [
                {"name": "small", "models": ["light", "light-b"], "when": {"score_below": 0.4}},
                {"name": "big", "models": ["strong"], "balance": "least-latency"},
            ],
            "retry": {
                "attempts": 2,
                "on_status": [429, 500, 502, 503, 504],
                "backoff": {"min": "200ms", "max": "2s"},
            },
            "breaker": {"failures": 5, "window": "30s", "cooldown": "15s"},
            "fallbacks": {"big": ["small"]},
            "cascade": [{"from": "small", "to": "big", "checks": ["empty", "length"]}],
            "degraded": {"text": "Sorry!"},
        }
    )
    assert cfg.retry.backoff.min == pytest.approx(0.2)
    assert cfg.cascade[0].from_ == "small"
    assert cfg.tiers[1].balance == "least-latency"
    assert validate_routing(cfg, ROOT) == []


def test_unknown_keys_and_bad_values_are_reported_with_paths() -> None:
    with pytest.raises(ConfigError) as info:
        routing(
            {
                "tiers": [{"name": "a", "models": ["light"], "balance": "fastest"}],
                "retry": {"attempt": 3},
                "cascade": [{"from": "a", "to": "b", "checks": ["vibes"]}],
            }
        )
    text = "\n".join(info.value.issues)
    assert "`$.routing.tiers[0].balance`" in text
    assert "Unknown field `attempt` - at `$.routing.retry` (did you mean `attempts`?)" in text
    assert "`$.routing.cascade[0].checks[0]`" in text


def test_cross_references_are_checked() -> None:
    cfg = routing(
        {
            "tiers": [
                {
                    "name": "small",
                    "models": ["light", "nope", "embed"],
                    "when": {"score_below": 0.6},
                },
                {"name": "small", "models": [], "when": {"score_below": 0.3}},
                {"name": "auto", "models": ["strong"]},
            ],
            "fallbacks": {"ghost": ["small"], "small": ["small", "missing"]},
            "cascade": [{"from": "small", "to": "small", "refusal_patterns": ["(unclosed"]}],
        }
    )
    issues = validate_routing(cfg, ROOT)
    assert (
        "Expected a model defined under `models` (`embed`, `light`, `light-b`, `strong`), got `nope`"
        " - at `$.routing.tiers[0].models[1]`"
    ) in issues
    assert (
        "Expected a chat model, got embeddings model `embed` - at `$.routing.tiers[0].models[2]`"
        in issues
    )
    assert "Expected unique tier names, got `small` twice - at `$.routing.tiers[1].name`" in issues
    assert "Expected at least one model, got `[]` - at `$.routing.tiers[1].models`" in issues
    assert (
        "Expected thresholds increasing down the tier list, got `0.3` after `0.6` - at `$.routing.tiers[1].when.score_below`"
        in issues
    )
    assert any("reserved" in issue and "tiers[2].name" in issue for issue in issues)
    assert any(issue.endswith("got `ghost` - at `$.routing.fallbacks.ghost`") for issue in issues)
    assert (
        "Expected a fallback other than itself, got `small` - at `$.routing.fallbacks.small[0]`"
        in issues
    )
    assert any(
        issue.endswith("got `missing` - at `$.routing.fallbacks.small[1]`") for issue in issues
    )
    assert (
        "Expected `to` to differ from `from`, got `small` - at `$.routing.cascade[0].to`" in issues
    )
    assert any("refusal_patterns[0]" in issue for issue in issues)


def test_numbers_are_checked() -> None:
    cfg = routing(
        {
            "tiers": [{"name": "t", "models": ["light"], "when": {"score_below": 1.5}}],
            "retry": {
                "attempts": 0,
                "on_status": [200],
                "backoff": {"min": "3s", "max": "1s"},
                "deadline": 0,
            },
            "breaker": {
                "failure_ratio": 1.5,
                "min_volume": 0,
                "half_open_probes": 0,
                "failures": 0,
            },
            "scorer": {"head_weight": 2, "weights": {"vibes": 1}},
        }
    )
    issues = validate_routing(cfg, ROOT)
    assert (
        "Expected a score in [0, 1], got `1.5` - at `$.routing.tiers[0].when.score_below`" in issues
    )
    assert "Expected `int` >= 1, got `0` - at `$.routing.retry.attempts`" in issues
    assert (
        "Expected an HTTP error status (400-599), got `200` - at `$.routing.retry.on_status[0]`"
        in issues
    )
    assert (
        "Expected backoff min <= max, got min `3s` > max `1s` - at `$.routing.retry.backoff`"
        in issues
    )
    assert "Expected a duration > 0, got `0s` - at `$.routing.retry.deadline`" in issues
    assert "Expected a ratio in (0, 1], got `1.5` - at `$.routing.breaker.failure_ratio`" in issues
    assert "Expected `int` >= 1, got `0` - at `$.routing.breaker.min_volume`" in issues
    assert "Expected `int` >= 1, got `0` - at `$.routing.breaker.failures`" in issues
    assert "Expected `int` >= 1, got `0` - at `$.routing.breaker.half_open_probes`" in issues
    assert "Expected a weight in [0, 1], got `2.0` - at `$.routing.scorer.head_weight`" in issues
    assert any(issue.endswith("got `vibes` - at `$.routing.scorer.weights`") for issue in issues)


def test_head_file_must_exist(tmp_path: Any) -> None:
    root = TidegateConfig(models=ROOT.models, source=str(tmp_path / "tidegate.yaml"))
    cfg = routing({"scorer": {"head": "router-head.npz"}})
    issues = validate_routing(cfg, root)
    assert len(issues) == 1 and issues[0].endswith("- at `$.routing.scorer.head`")
    (tmp_path / "router-head.npz").write_bytes(b"x")
    assert validate_routing(cfg, root) == []
