"""The `tools:`, `agents:` and `sessions:` sections: decoding and semantic checks with paths."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tidegate.config import parse_config
from tidegate.config.agents import AgentsConfig, SessionsConfig, agents_config_of, validate_agents
from tidegate.errors import ConfigError

from .conftest import agents_config

ROOT = parse_config({"models": {"light": {"url": "http://127.0.0.1:1/v1"}}})


def issues(data: dict[str, Any]) -> list[str]:
    return validate_agents(agents_config(data), ROOT)


def test_a_full_section_decodes_with_its_value_types() -> None:
    cfg = agents_config({
        "tools": {
            "lookup": {"python": "myapp.tools:lookup", "timeout": "2s", "retry": {"attempts": 3, "backoff": "50ms"},
                       "max_concurrency": 8},
            "crm": {"http": {"url": "https://crm.example.com/v1/orders/{id}", "method": "GET",
                             "auth": {"type": "bearer", "token": "t"}, "max_response_size": "64kb"}},
        },
        "agents": {"support": {"model": "light", "tools": ["lookup", "crm"], "timeout": "1m", "max_tokens": 4000,
                               "serve_as": ["support-agent"], "strategy": "react"}},
        "sessions": {"ttl": "30m", "window_turns": 6, "window_tokens": 2000},
    })  # fmt: skip
    assert cfg.tools["lookup"].timeout == 2.0 and cfg.tools["lookup"].retry.backoff == 0.05
    assert cfg.tools["crm"].http is not None and cfg.tools["crm"].http.max_response_size == 64_000
    assert cfg.agents["support"].timeout == 60.0
    assert cfg.sessions.ttl == 1800.0
    assert validate_agents(cfg, ROOT) == []


def test_unknown_fields_are_reported_with_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        agents_config({"agents": {"a": {"model": "light", "max_step": 3}}})
    assert caught.value.issues == ["Unknown field `max_step` - at `$.agents.a` (did you mean `max_steps`?)"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tools": {"t": {}}}, "Expected exactly one of `python`, `http` or `workflow`, got none - at `$.tools.t`"),
        ({"tools": {"t": {"python": "m:f", "http": {"url": "https://crm.example.com/v1"}}}},
         "Expected exactly one of `python`, `http` or `workflow`, got `python`, `http` - at `$.tools.t`"),
        ({"tools": {"t": {"python": "not a ref"}}},
         "Expected `module:function` (e.g. `myapp.tools:lookup`), got `not a ref` - at `$.tools.t.python`"),
        ({"tools": {"9lives": {"python": "m:f"}}},
         "Expected a tool name of at most 64 letters, digits, `_` or `-` (not starting with a digit), got `9lives` - at `$.tools.9lives`"),
        ({"tools": {"t": {"http": {"url": "ftp://x/"}}}}, "Expected an http(s) URL, got `ftp://x/` - at `$.tools.t.http.url`"),
        ({"tools": {"t": {"http": {"url": "http://x/", "auth": {"type": "bearer"}}}}},
         "Expected a `token` for `bearer` auth, got nothing - at `$.tools.t.http.auth.token`"),
        ({"tools": {"t": {"python": "m:f", "timeout": "0s"}}}, "Expected a duration > 0, got `0s` - at `$.tools.t.timeout`"),
        ({"tools": {"t": {"python": "m:f", "retry": {"attempts": 0}}}}, "Expected `int` >= 1, got `0` - at `$.tools.t.retry.attempts`"),
        ({"tools": {"t": {"python": "m:f", "parameters": {"type": "array"}}}},
         "Expected a JSON schema of `type: object`, got `array` - at `$.tools.t.parameters.type`"),
        ({"agents": {"a": {"model": "heavy"}}}, "Expected a configured model (`light`), got `heavy` - at `$.agents.a.model`"),
        ({"agents": {"a": {"model": "light", "tools": ["x"]}}}, "Expected a tool from `tools:` (none), got `x` - at `$.agents.a.tools[0]`"),
        ({"agents": {"a": {"model": "light", "max_steps": 0}}}, "Expected `int` >= 1, got `0` - at `$.agents.a.max_steps`"),
        ({"agents": {"a": {"model": "light", "serve_as": ["x"]}, "b": {"model": "light", "serve_as": ["x"]}}},
         "Expected each served model name to belong to one agent, got `x` for `a` and `b` - at `$.agents.b.serve_as[0]`"),
        ({"sessions": {"max_sessions": 0}}, "Expected `int` >= 1, got `0` - at `$.sessions.max_sessions`"),
        ({"sessions": {"window_turns": -1}}, "Expected `int` >= 0 or null, got `-1` - at `$.sessions.window_turns`"),
    ],
)
def test_semantic_checks_name_what_and_where(data: dict[str, Any], expected: str) -> None:
    assert issues(data) == [expected]


def test_workflow_tools_must_name_a_configured_workflow() -> None:
    root = SimpleNamespace(models={"light": None}, workflows={"refunds": None})
    cfg = agents_config({"tools": {"w": {"workflow": "refund"}}})
    assert validate_agents(cfg, root) == [  # type: ignore[arg-type]
        "Expected a configured workflow (`refunds`), got `refund` - at `$.tools.w.workflow`"
    ]


def test_sections_from_a_root_that_does_not_carry_them_yet() -> None:
    assert agents_config_of(ROOT) == AgentsConfig(tools={}, agents={}, sessions=SessionsConfig())
