"""Config of embedders (``embeddings:``) and knowledge bases (``knowledge:``).

``embeddings`` maps a name to how vectors are made; ``knowledge`` maps a name to a corpus, where
its index lives and which embedder built it. Knowledge bases refer to embedders by name so one
loaded model serves several bases (and the semantic cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from .types import ConfigStruct, Duration

__all__ = [
    "EmbedderConfig",
    "HybridConfig",
    "KnowledgeConfig",
    "resolve_path",
    "validate_knowledge",
]

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class EmbedderConfig(ConfigStruct):
    """One embedder. ``kind: local`` runs a shipped model in-process (``model`` picks it:
    ``all-MiniLM-L6-v2`` (default, English), ``use-multilingual-v3``, ``multilingual-e5-small``);
    ``hash`` is lexical-only and dependency-free; ``openai`` calls ``{url}/embeddings``."""

    kind: Literal["local", "hash", "openai"] = "local"
    model: str | None = None
    url: str | None = None
    api_key: str | None = None
    dim: PositiveInt | None = None
    """Vector size; required knowledge for ``openai`` (else probed once at start), fixed for local."""
    batch_size: PositiveInt = 32
    """Most texts per model call; concurrent requests are merged up to this."""
    batch_wait: Duration = Duration(0.002)
    """Longest a request waits for others to share its batch."""
    cache_size: Annotated[int, msgspec.Meta(ge=0)] = 4096
    """Recent embeddings kept (by text); 0 turns the cache off."""
    cache_ttl: Duration = Duration(600.0)
    timeout: Duration = Duration(30.0)
    """Deadline of one request to an ``openai`` endpoint."""
    max_inflight: PositiveInt = 4
    """Concurrent batches toward an ``openai`` endpoint (local models run one at a time)."""
    threads: PositiveInt | None = None
    """CPU threads a local model uses per batch (default: all cores but one, at most 4)."""


class HybridConfig(ConfigStruct):
    """Blend of vector and BM25 keyword scores (Dify's ``weighted_score``)."""

    vector_weight: float = 0.7
    keyword_weight: float = 0.3


class KnowledgeConfig(ConfigStruct):
    """One knowledge base: files under ``source`` embedded into an index stored at ``index``.

    ``index`` is a folder (created on first ingest) holding a manifest, the USearch index and the
    documents store; relative paths resolve against the config file's folder.
    """

    index: str
    source: str | list[str] | None = None
    embedder: str = "default"
    dtype: Literal["f32", "f16", "i8"] = "f32"
    metric: Literal["cos", "ip", "l2sq"] = "cos"
    chunk_size: PositiveInt = 800
    """Most characters in one chunk; chunks follow headings and paragraphs below this."""
    chunk_overlap: Annotated[int, msgspec.Meta(ge=0)] = 100
    top_k: PositiveInt = 4
    score_threshold: float | None = None
    """Minimum score of a hit; defaults to the embedder's own (cosines differ between models)."""
    hybrid: HybridConfig | None = None
    view: bool = False
    """Memory-map the saved index read-only instead of loading it (large, static bases)."""
    exact_below: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """Up to this many vectors search is exact (numpy): as fast as HNSW there (measured by
    ``tests/bench/bench_knowledge.py``), exact, and filters cost nothing extra."""
    connectivity: PositiveInt = 16
    expansion_add: PositiveInt = 128
    expansion_search: PositiveInt = 64


def resolve_path(path: str, root: Any = None) -> Path:
    """A config path: relative ones resolve against the config file's folder (``root.source``)."""
    candidate = Path(path).expanduser()
    source = getattr(root, "source", None)
    if not candidate.is_absolute() and source:
        candidate = Path(source).resolve().parent / candidate
    return candidate


def validate_knowledge(cfg: Any, root: Any = None) -> list[str]:
    """Cross checks over ``cfg.embeddings`` and ``cfg.knowledge`` (``cfg`` is the root config).

    ``root`` is accepted for symmetry with the other validators; paths are checked for shape only
    (a source folder may appear later, an index folder is created on ingest).
    """
    issues: list[str] = []
    embeddings: dict[str, EmbedderConfig] = getattr(cfg, "embeddings", None) or {}
    knowledge: dict[str, KnowledgeConfig] = getattr(cfg, "knowledge", None) or {}
    for name, emb in embeddings.items():
        at = f"$.embeddings.{name}"
        if emb.kind == "openai":
            if not emb.url:
                issues.append(f"Expected a `url` for an openai embedder, got nothing - at `{at}.url`")
            else:
                parts = urlsplit(emb.url)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    issues.append(
                        f"Expected an http(s) URL like `http://127.0.0.1:8080/v1`, got `{emb.url}`"
                        f" - at `{at}.url`"
                    )
        elif emb.kind == "local":
            from ..embeddings.local import MODELS, resolve_model

            try:
                spec = resolve_model(emb.model)
            except ValueError:
                known = ", ".join(f"`{m}`" for m in MODELS)
                issues.append(f"Expected one of {known}, got `{emb.model}` - at `{at}.model`")
            else:
                if emb.dim is not None and emb.dim != spec.dim:
                    issues.append(
                        f"Expected `dim` {spec.dim} for local model `{spec.name}`, got `{emb.dim}`"
                        f" - at `{at}.dim`"
                    )
            if emb.url:
                issues.append(f"Expected no `url` for a local embedder, got `{emb.url}` - at `{at}.url`")
        if emb.batch_wait > 1.0:
            issues.append(
                f"Expected a `batch_wait` <= 1s (it delays every request), got `{float(emb.batch_wait)}s`"
                f" - at `{at}.batch_wait`"
            )
    for name, kb in knowledge.items():
        at = f"$.knowledge.{name}"
        if kb.embedder not in embeddings and not (kb.embedder == "default" and not embeddings):
            known = ", ".join(f"`{e}`" for e in embeddings) or "none configured"
            issues.append(
                f"Expected an embedder defined under `embeddings` ({known}), got `{kb.embedder}`"
                f" - at `{at}.embedder`"
            )
        if kb.chunk_overlap >= kb.chunk_size:
            issues.append(
                f"Expected `chunk_overlap` < `chunk_size` ({kb.chunk_size}), got `{kb.chunk_overlap}`"
                f" - at `{at}.chunk_overlap`"
            )
        if kb.score_threshold is not None and not -1.0 <= kb.score_threshold <= 1.0:
            issues.append(
                f"Expected `score_threshold` in [-1, 1], got `{kb.score_threshold}`"
                f" - at `{at}.score_threshold`"
            )
        if kb.hybrid is not None:
            weights = (kb.hybrid.vector_weight, kb.hybrid.keyword_weight)
            if min(weights) < 0 or sum(weights) <= 0:
                issues.append(
                    f"Expected weights >= 0 with a positive sum, got `{weights[0]}` and `{weights[1]}`"
                    f" - at `{at}.hybrid`"
                )
        if not kb.index.strip():
            issues.append(f"Expected a folder path, got `{kb.index}` - at `{at}.index`")
    return issues
