"""Config loading: every kind of mistake gets a pinned message naming file, path, expected, found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate import ConfigError, load_config
from tidegate.config import ByteSize, Duration, Rate, parse_config
from tidegate.config.types import dec_hook

GOOD = """
prefix: /ai/
auth: {api_keys: "${TG_KEYS:-alice:sk-a,bob:sk-b}"}
models:
  light: {url: "http://127.0.0.1:8001/v1/", model: qwen2.5-1.5b-instruct, max_concurrency: 64, timeout: 20s}
  strong: {url: "${STRONG_URL}", api_key: "${STRONG_KEY:-none}", first_byte_timeout: 1500ms}
max_body_size: 2MB
shutdown_timeout: 10s
"""


def write(tmp_path: Path, text: str, name: str = "tidegate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    assert isinstance(info.value, ValueError)
    return info.value.issues


def test_good_yaml_loads_with_env_defaults_durations_and_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path, env={"STRONG_URL": "https://api.example.com/v1"})
    assert config.prefix == "/ai"
    assert config.source == str(path)
    light = config.models["light"]
    assert light.url == "http://127.0.0.1:8001/v1"
    assert light.timeout == 20.0 and isinstance(light.timeout, Duration)
    assert config.models["strong"].first_byte_timeout == pytest.approx(1.5)
    assert config.models["strong"].api_key == "none"
    assert config.max_body_size == 2_000_000
    assert config.auth.keys() == {"alice": "sk-a", "bob": "sk-b"}


def test_toml_and_json_load_the_same_config(tmp_path: Path) -> None:
    toml = write(tmp_path, '[models.light]\nurl = "http://127.0.0.1:1/v1"\ntimeout = "2s"\n', "c.toml")
    data = {"models": {"light": {"url": "http://127.0.0.1:1/v1", "timeout": "2s"}}}
    js = write(tmp_path, json.dumps(data), "c.json")
    assert load_config(toml).models == load_config(js).models


def test_unknown_key_has_path_and_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  light: {url: 'http://x/v1', timeot: 2s}\n")
    assert problems(path) == [
        f"Unknown field `timeot` - at `$.models.light` (did you mean `timeout`?) ({path})"
    ]


def test_unknown_top_level_key_lists_choices_when_nothing_is_close(tmp_path: Path) -> None:
    path = write(tmp_path, "zzz: 1\n")
    (issue,) = problems(path)
    assert issue.startswith("Unknown field `zzz` - at `$`; expected one of `prefix`, `models`")
    assert issue.endswith(f"({path})")


def test_wrong_types_and_bad_values_are_all_collected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n"
        "  a: {url: 'http://x/v1', timeout: soon, max_concurrency: many}\n"
        "  b: {model: m}\n"
        "max_body_size: huge\n",
    )
    assert problems(path) == [
        f"Expected a duration like `200ms`, `2s` or `10m`, got `'soon'` - at `$.models.a.timeout` ({path})",
        f"Expected `int`, got `str` - at `$.models.a.max_concurrency` ({path})",
        f"Object missing required field `url` - at `$.models.b` ({path})",
        f"Expected a size like `4MB` or `512kb`, got `'huge'` - at `$.max_body_size` ({path})",
    ]


def test_missing_env_variable_names_the_variable_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  a: {url: '${UPSTREAM}'}\n")
    assert problems(path) == [
        f"Expected environment variable `UPSTREAM` to be set, got nothing - at `$.models.a.url` ({path})"
    ]


def test_semantic_problems_are_collected_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n"
        "  a: {url: 'ftp://x', max_concurrency: 0}\n"
        "auth: {api_keys: {one: same, two: same}}\n",
    )
    assert problems(path) == [
        f"Expected an http(s) URL like `http://127.0.0.1:8001/v1`, got `ftp://x` - at `$.models.a.url` ({path})",
        f"Expected `int` >= 1, got `0` - at `$.models.a.max_concurrency` ({path})",
        "Expected every API key to be distinct, got the same secret for `one` and `two`"
        f" - at `$.auth.api_keys` ({path})",
    ]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  a: {url: 'http://x'\n")
    (issue,) = problems(path)
    assert issue.startswith("Invalid YAML at line 3")
    assert str(path) in issue


def test_unreadable_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"ending in \.yaml, \.yml, \.toml or \.json, got `c\.ini`"):
        load_config(write(tmp_path, "x", "c.ini"))


def test_api_key_forms() -> None:
    assert parse_config({"auth": {"api_keys": ["k1", "k2"]}}).auth.keys() == {"key0": "k1", "key1": "k2"}
    assert parse_config({"auth": {"api_keys": {"a": "x", "b": ""}}}).auth.keys() == {"a": "x"}
    assert parse_config({"auth": {"api_keys": "solo"}}).auth.keys() == {"key0": "solo"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("2s", 2.0), ("10m", 600.0), ("1h", 3600.0), ("1.5s", 1.5), (3, 3.0), ("7", 7.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1s", "2 weeks", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        Duration.parse(text)


def test_rates_normalize_to_limits_syntax() -> None:
    rate = Rate.parse("10/second; 1000 per hour")
    assert rate == "10/second;1000/hour"
    assert rate.items == ((10, 1, "second"), (1000, 1, "hour"))
    assert Rate.parse("100/minute").per_second() == pytest.approx(100 / 60)
    with pytest.raises(ValueError, match="rate"):
        Rate.parse("lots")


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(["ms", "s", "m", "h"]))
def test_duration_roundtrip(amount: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert Duration.parse(f"{amount}{unit}") == pytest.approx(amount * factor)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["b", "kb", "KiB", "MB"]))
def test_sizes(amount: int, unit: str) -> None:
    factor = {"b": 1, "kb": 1000, "KiB": 1024, "MB": 10**6}[unit]
    assert ByteSize.parse(f"{amount}{unit}") == amount * factor


@given(st.text(max_size=30))
def test_dec_hook_never_crashes_with_other_errors(text: str) -> None:
    for tp in (Duration, ByteSize, Rate):
        try:
            dec_hook(tp, text)
        except ValueError:
            pass


def test_turn_budget_is_a_short_duration_or_null(tmp_path: Path) -> None:
    assert parse_config({}).turn_budget == 0.001
    assert parse_config({"turn_budget": None}).turn_budget is None
    assert parse_config({"turn_budget": "5ms"}).turn_budget == 0.005
    path = write(tmp_path, "turn_budget: 2s\n")
    assert problems(path) == [f"Expected a duration in (0, 100ms] or null, got `2.0s` - at `$.turn_budget` ({path})"]
