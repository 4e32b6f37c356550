"""`embeddings:` and `knowledge:` config: decoding paths and semantic checks with their messages."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tidegate.config import convert_section
from tidegate.config.knowledge import (
    EmbedderConfig,
    KnowledgeConfig,
    resolve_path,
    validate_knowledge,
)
from tidegate.errors import ConfigError


def _root(embeddings: dict[str, object], knowledge: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(
        embeddings=convert_section(embeddings, dict[str, EmbedderConfig], "$.embeddings"),
        knowledge=convert_section(knowledge, dict[str, KnowledgeConfig], "$.knowledge"),
        source=None,
    )


def test_defaults_and_durations() -> None:
    emb = convert_section({"kind": "hash", "batch_wait": "5ms", "cache_ttl": "1h"}, EmbedderConfig, "$.e")
    assert emb.batch_wait == pytest.approx(0.005) and emb.cache_ttl == 3600.0
    kb = convert_section({"index": "idx", "hybrid": {}}, KnowledgeConfig, "$.k")
    assert kb.dtype == "f32" and kb.metric == "cos" and kb.hybrid is not None
    assert kb.embedder == "default" and kb.top_k == 4


def test_type_errors_carry_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        convert_section({"main": {"kind": "bert", "batch_size": 0, "colour": 1}},
                        dict[str, EmbedderConfig], "$.embeddings")  # fmt: skip
    text = "\n".join(caught.value.issues)
    assert "at `$.embeddings.main.kind`" in text
    assert "Expected `int` >= 1 - at `$.embeddings.main.batch_size`" in text
    assert "Unknown field `colour` - at `$.embeddings.main`" in text
    with pytest.raises(ConfigError, match=r"at `\$\.knowledge\.kb\.dtype`"):
        convert_section({"kb": {"index": "x", "dtype": "bf16"}}, dict[str, KnowledgeConfig], "$.knowledge")


def test_semantic_checks_collect_every_issue() -> None:
    root = _root(
        {"remote": {"kind": "openai"}, "bad": {"kind": "openai", "url": "ftp://x"},
         "mini": {"kind": "local", "dim": 512}, "slow": {"kind": "hash", "batch_wait": "2s"}},
        {"kb": {"index": "i", "embedder": "nope", "chunk_size": 100, "chunk_overlap": 100,
                "score_threshold": 2.0, "hybrid": {"vector_weight": -1, "keyword_weight": 0}}},
    )  # fmt: skip
    issues = validate_knowledge(root, root)
    expected = [
        "Expected a `url` for an openai embedder, got nothing - at `$.embeddings.remote.url`",
        "Expected an http(s) URL like `http://127.0.0.1:8080/v1`, got `ftp://x` - at `$.embeddings.bad.url`",
        "Expected `dim` 384 for local model `all-MiniLM-L6-v2`, got `512` - at `$.embeddings.mini.dim`",
        "Expected a `batch_wait` <= 1s (it delays every request), got `2.0s` - at `$.embeddings.slow.batch_wait`",
        "Expected `chunk_overlap` < `chunk_size` (100), got `100` - at `$.knowledge.kb.chunk_overlap`",
        "Expected `score_threshold` in [-1, 1], got `2.0` - at `$.knowledge.kb.score_threshold`",
        "Expected weights >= 0 with a positive sum, got `-1.0` and `0.0` - at `$.knowledge.kb.hybrid`",
    ]
    for message in expected:
        assert message in issues
    assert any("at `$.knowledge.kb.embedder`" in i and "`nope`" in i for i in issues)


def test_a_valid_config_has_no_issues() -> None:
    root = _root({"default": {"kind": "hash"}}, {"kb": {"index": "i", "source": "docs/"}})
    assert validate_knowledge(root, root) == []
    # No `embeddings:` at all: `default` means the built-in local model.
    bare = _root({}, {"kb": {"index": "i"}})
    assert validate_knowledge(bare, bare) == []


def test_unknown_local_model_is_reported() -> None:
    root = _root({"x": {"kind": "local", "model": "gpt-embed"}}, {})
    issues = validate_knowledge(root, root)
    assert len(issues) == 1 and issues[0].endswith("got `gpt-embed` - at `$.embeddings.x.model`")


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    root = SimpleNamespace(source=str(tmp_path / "conf" / "tidegate.yaml"))
    assert resolve_path("kb/docs", root) == (tmp_path / "conf" / "kb" / "docs").resolve()
    assert resolve_path("/abs/x", root) == Path("/abs/x")
    assert resolve_path("rel", None) == Path("rel")
