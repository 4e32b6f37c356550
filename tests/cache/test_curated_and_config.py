"""Curated answers from a prewarm file, and the ``cache:`` config section with its checks."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cache.helpers import Upstream, ask, text_of
from tidegate.cache import load_curated
from tidegate.config import convert_section
from tidegate.config.cache import CacheConfig, validate_cache
from tidegate.context import RequestContext
from tidegate.errors import ConfigError

ANSWERS = [
    {"question": "How do I get a refund?", "answer": "Open Orders and press Refund.", "alternates": ["Can I get my money back?"]},
    {"question": "What is the VIP hotline?", "answer": "Call 555-0100.", "tenant": "acme"},
    {"question": "Which model are you?", "answer": "The strong one.", "route": "strong"},
]


@pytest.fixture
def prewarm(tmp_path: Path) -> Path:
    path = tmp_path / "curated.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in ANSWERS) + "\n")
    return path


async def reply(cache: Any, body: dict[str, Any], tenant: str = "acme") -> tuple[str, dict[str, str], Upstream]:
    up = Upstream()
    context = RequestContext(tenant=tenant)
    response = await cache.complete(body, context, up.complete)
    return response["choices"][0]["message"]["content"], dict(context.response_headers), up


async def test_curated_answers_match_by_text_and_by_meaning(make_cache: Any, prewarm: Path) -> None:
    cache = await make_cache({"prewarm": str(prewarm)})
    text, headers, up = await reply(cache, ask("how do i get a refund"))
    assert (text, headers["cache-status"], up.calls) == ("Open Orders and press Refund.", "tidegate; hit; detail=curated", 0)
    text, headers, _ = await reply(cache, ask("How do I get a refund please?"))
    assert text == "Open Orders and press Refund." and "x-tidegate-cache-similarity" in headers
    assert (await reply(cache, ask("Can I get my money back?")))[0] == "Open Orders and press Refund."
    response = await cache.complete(ask("How do I get a refund?", model="light"), None, Upstream().complete)
    assert response["model"] == "light" and response["usage"]["total_tokens"] == 0
    assert cache.stats()["curated"] == 4


async def test_curated_answers_respect_tenant_and_route(make_cache: Any, prewarm: Path) -> None:
    cache = await make_cache({"prewarm": str(prewarm)})
    assert (await reply(cache, ask("What is the VIP hotline?"), tenant="acme"))[0] == "Call 555-0100."
    assert (await reply(cache, ask("What is the VIP hotline?"), tenant="globex"))[0] == "answer 1"
    assert (await reply(cache, ask("Which model are you?", model="strong")))[0] == "The strong one."
    assert (await reply(cache, ask("Which model are you?", model="light")))[0] == "answer 1"


async def test_curated_answers_stream(make_cache: Any, prewarm: Path) -> None:
    cache = await make_cache({"prewarm": str(prewarm)})
    context = RequestContext(tenant="acme")
    chunks = [c async for c in cache.stream(ask("How do I get a refund?", stream=True), context, Upstream().stream())]
    assert text_of(chunks) == "Open Orders and press Refund."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_relative_prewarm_paths_follow_the_config_file(make_cache: Any, prewarm: Path) -> None:
    cache = await make_cache({"prewarm": prewarm.name}, source=str(prewarm.parent / "tidegate.yaml"))
    assert cache.stats()["curated"] == 4


def test_curated_files_in_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nanswers:\n  - {question: Hi, answer: Hello}\n")
    (tmp_path / "b.json").write_text('[{"question": "Hi", "answer": "Hello", "route": "light"}]')
    assert [a.answer for a in load_curated(tmp_path / "a.yaml")] == ["Hello"]
    assert load_curated(tmp_path / "b.json")[0].route == "light"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"question": "Hi"}]', r"answer"),
        ('[{"question": "Hi", "answer": "  "}]', r"Expected a non-empty `answer`, got nothing - at `\$\.answers\[0\]\.answer`"),
        ('[{"question": "Hi", "answer": "x", "tenat": "a"}]', r"tenat"),
        ("{not json", r"Invalid curated answers file"),
    ],
)
def test_bad_curated_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_curated(path)
    with pytest.raises(ConfigError, match="Cannot read curated answers"):
        load_curated(tmp_path / "missing.jsonl")


def parse(data: dict[str, Any]) -> CacheConfig:
    return convert_section(data, CacheConfig, "$.cache")


def test_config_defaults_and_spelled_values() -> None:
    cfg = parse({"exact": {"ttl": "10m", "max_entries": 100000}, "semantic": {"ttl": "1h"},
                 "routes": {"light": {"ttl": "30s", "threshold": 0.8}}})  # fmt: skip
    assert (float(cfg.exact.ttl), float(cfg.semantic.ttl)) == (600.0, 3600.0)
    assert cfg.semantic.threshold is None and cfg.semantic.embedder == "default"
    assert float(cfg.routes["light"].ttl or 0) == 30.0
    assert validate_cache(cfg, None) == []


def test_config_unknown_keys_and_bad_types_have_paths() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"exactt": {}, "semantic": {"max_entries": 0}})
    text = str(info.value)
    assert "$.cache.exactt" in text or "exactt" in text
    assert "$.cache.semantic.max_entries" in text


def test_config_semantic_checks_collect_every_issue() -> None:
    cfg = parse({
        "exact": {"ttl": 0}, "semantic": {"threshold": 1.5, "max_temperature": 3, "embedder": "e5"},
        "routes": {"light": {"ttl": 0, "threshold": 0}}, "tenant_header": " ", "sweep_interval": 0,
    })  # fmt: skip
    root = SimpleNamespace(embeddings={"minilm": object()})
    issues = validate_cache(cfg, root)
    assert "Expected a duration > 0, got `0.0s` - at `$.cache.exact.ttl`" in issues
    assert "Expected a cosine threshold in (0, 1], got `1.5` - at `$.cache.semantic.threshold`" in issues
    assert "Expected `max_temperature` in [0, 2], got `3.0` - at `$.cache.semantic.max_temperature`" in issues
    assert ("Expected an embedder defined under `embeddings` (`minilm`), got `e5`"
            " - at `$.cache.semantic.embedder`") in issues  # fmt: skip
    assert "Expected a duration > 0, got `0.0s` - at `$.cache.routes.light.ttl`" in issues
    assert "Expected a cosine threshold in (0, 1], got `0.0` - at `$.cache.routes.light.threshold`" in issues
    assert "Expected a header name, got an empty string - at `$.cache.tenant_header`" in issues
    assert len(issues) == 8
    assert validate_cache(None, root) == []
