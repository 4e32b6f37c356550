"""Config of admission: decoding with paths, semantic validation messages, and rule parsing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.config.admission import AdmissionSection, validate_admission
from tidegate.config.loader import convert_section
from tidegate.errors import ConfigError

from .admission_support import info, running


def issues_of(**data: Any) -> list[str]:
    return validate_admission(convert_section(data, AdmissionSection, "$"))


def test_design_example_is_valid() -> None:
    cfg = convert_section(
        {
            "limits": [
                {"key": "ip", "requests": "100/minute"},
                {"key": "api_key", "tokens": "200000/minute"},
                {"key": "global", "concurrency": 512, "queue": 2048, "queue_timeout": "2s"},
            ],
            "protect": [{"path": "/api/*", "key": "ip", "requests": "100/minute"}],
            "admission": {"trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]},
        },
        AdmissionSection,
        "$",
    )
    assert validate_admission(cfg) == []
    assert cfg.limits[2].queue_timeout == 2.0
    assert cfg.limits[1].tokens == "200000/minute"
    assert cfg.protect[0].path == "/api/*"


def test_decode_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        convert_section(
            {"limits": [{"key": "ip", "requests": "lots"}, {"concurency": 3}]},
            AdmissionSection,
            "$",
        )
    text = str(caught.value)
    assert "at `$.limits[0].requests`" in text
    assert "Unknown field `concurency` - at `$.limits[1]` (did you mean `concurrency`?)" in text


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"key": "address", "requests": "1/second"},
            "Expected one of `ip`, `api_key`, `user`, `tenant`, `global` or `header:NAME`, got"
            " `address` - at `$.limits[0].key`",
        ),
        (
            {"key": "header:bad header", "requests": "1/second"},
            "Expected `header:NAME` with a valid header name, got `header:bad header`"
            " - at `$.limits[0].key`",
        ),
        (
            {"key": "ip"},
            "Expected at least one of `requests`, `tokens` or `concurrency`, got none"
            " - at `$.limits[0]`",
        ),
        (
            {"requests": "1/second", "tokens": "10/second", "burst": 5},
            "Expected `burst` with only one of `requests` or `tokens` (it takes that rate's unit),"
            " got both - at `$.limits[0].burst`",
        ),
        (
            {"concurrency": 2, "burst": 5},
            "Expected `burst` together with `requests` or `tokens` (the rate that refills it),"
            " got neither - at `$.limits[0].burst`",
        ),
        (
            {"requests": "1/second", "burst": 0},
            "Expected `int` >= 1, got `0` - at `$.limits[0].burst`",
        ),
        ({"concurrency": 0}, "Expected `int` >= 1, got `0` - at `$.limits[0].concurrency`"),
        (
            {"requests": "5/second", "queue": 10},
            "Expected `queue` together with `concurrency`, got `queue: 10` alone"
            " - at `$.limits[0].queue`",
        ),
        (
            {"concurrency": 2, "queue": 4, "queue_timeout": 0},
            "Expected a duration > 0, got `0.0s` - at `$.limits[0].queue_timeout`",
        ),
        (
            {"key": "ip", "concurrency": "auto"},
            "Expected `concurrency: auto` on a `global` key (it protects an upstream, optionally"
            " per `scope`), got key `ip` - at `$.limits[0].concurrency`",
        ),
        (
            {"concurrency": 4, "adaptive": {"initial": 8}},
            "Expected `adaptive` only with `concurrency: auto`, got `concurrency: 4`"
            " - at `$.limits[0].adaptive`",
        ),
        (
            {"concurrency": "auto", "adaptive": {"min": 10, "initial": 5}},
            "Expected `min` <= `initial` <= `max`, got 10 / 5 / 512 - at `$.limits[0].adaptive`",
        ),
        (
            {"requests": "1/second", "scope": "tenant"},
            "Expected `surface`, `model`, `workflow` or a path glob starting with `/`, got"
            " `tenant` - at `$.limits[0].scope`",
        ),
    ],
)
def test_rule_issues(rule: dict[str, Any], message: str) -> None:
    assert issues_of(limits=[rule]) == [message]


def test_protect_rule_issues() -> None:
    assert issues_of(protect=[{"path": ["api/*"], "tokens": "100/minute", "scope": "model"}]) == [
        "Expected no `scope` on a protect rule (its `path` is the scope), got `model`"
        " - at `$.protect[0].scope`",
        "Expected a path glob starting with `/`, got `api/*` - at `$.protect[0].path`",
        "Expected no `tokens` on a protect rule (host routes have no token estimate), got"
        " `100/minute` - at `$.protect[0].tokens`",
    ]


def test_protect_requires_path() -> None:
    with pytest.raises(
        ConfigError, match=r"Object missing required field `path` - at `\$.protect\[0\]`"
    ):
        convert_section({"protect": [{"requests": "1/second"}]}, AdmissionSection, "$")


def test_duplicate_names_and_settings_issues() -> None:
    assert issues_of(
        limits=[{"name": "a", "requests": "1/second"}, {"name": "a", "concurrency": 3}],
        admission={
            "storage": "redis://localhost",
            "trusted_proxies": ["10.0.0.0/8", "not-an-ip"],
            "priority_header": "x prio",
        },
    ) == [
        "Expected unique rule names, got `a` twice (also at `$.limits[0]`) - at `$.limits[1].name`",
        "Expected a storage URI like `async+memory://` or `async+redis://host:6379`, got"
        " `redis://localhost` - at `$.admission.storage`",
        "Expected an IP address or CIDR like `10.0.0.0/8`, got `not-an-ip`"
        " - at `$.admission.trusted_proxies[1]`",
        "Expected a header name, got `x prio` - at `$.admission.priority_header`",
    ]


# -- property: any valid rule the grammar allows compiles and can admit --------------------

units = st.sampled_from(["second", "minute", "hour", "day"])
rates = st.lists(
    st.builds(
        lambda n, m, u: f"{n}/{m} {u}s" if m > 1 else f"{n}/{u}",
        st.integers(1, 10**6),
        st.integers(1, 5),
        units,
    ),
    min_size=1,
    max_size=3,
).map(";".join)
keys = st.sampled_from(["ip", "api_key", "user", "tenant", "global", "header:x-org"])
scopes = st.sampled_from([None, "surface", "model", "workflow", "/ai/*"])


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"key": draw(keys)}
    requests, tokens = draw(st.one_of(st.none(), rates)), draw(st.one_of(st.none(), rates))
    concurrency = draw(st.one_of(st.none(), st.integers(1, 1000)))
    if requests is None and tokens is None and concurrency is None:
        concurrency = 1
    if requests:
        rule["requests"] = requests
    if tokens:
        rule["tokens"] = tokens
    if (requests is None) != (tokens is None) and draw(st.booleans()):
        rule["burst"] = draw(st.integers(1, 10_000))
    if concurrency is not None:
        rule["concurrency"] = concurrency
        rule["queue"] = draw(st.integers(0, 100))
    if (scope := draw(scopes)) is not None:
        rule["scope"] = scope
    return rule


@settings(max_examples=60, deadline=None)
@given(st.lists(rules(), min_size=1, max_size=4))
async def test_valid_rules_compile_and_admit(generated: list[dict[str, Any]]) -> None:
    assert issues_of(limits=generated) == []
    async with running(limits=generated) as admission:
        ticket = await admission.admit(info(path="/ai/v1/chat", model="m", est_tokens=1))
        async with ticket:
            pass
        assert len(admission.rules) == len(generated)
        for rule in admission.rules:
            spec = generated[int(rule.label.removeprefix("limits[").rstrip("]"))]
            parts = [len(set(spec[k].split(";"))) for k in ("requests", "tokens") if k in spec]
            assert len(rule.meters) == (1 if "burst" in spec else sum(parts))
            assert (rule.gate_pool is None) == ("concurrency" not in spec)


@given(st.text(max_size=30))
def test_arbitrary_key_strings_never_crash_validation(key: str) -> None:
    issues = issues_of(limits=[{"key": key, "requests": "1/second"}])
    token = "!#$%&'*+.^_`|~-"
    valid = key in ("ip", "api_key", "user", "tenant", "global") or (
        key.startswith("header:")
        and len(key) > 7
        and all(c.isascii() and (c.isalnum() or c in token) for c in key[7:])
    )
    assert (issues == []) == valid
