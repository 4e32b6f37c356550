"""Knowledge bases: documents chunked, embedded and searched with USearch (plus BM25 if asked).

``build_knowledge_base`` makes an unopened base from one ``knowledge:`` entry; the Gateway opens
it after its embedder started (``await kb.open()``) and closes it at shutdown.
"""

from __future__ import annotations

from typing import Any

from .._concurrency import WorkerPool
from ..config.knowledge import EmbedderConfig, KnowledgeConfig, resolve_path
from ..embeddings.base import Embedder
from .base import Hit, KnowledgeBase
from .ingest import IngestReport
from .loaders import SourceDoc
from .progress import Progress, ProgressBar

Document = SourceDoc

__all__ = [
    "Document",
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "Progress",
    "ProgressBar",
    "build_knowledge_base",
    "embedder_config",
]


def build_knowledge_base(
    name: str, cfg: KnowledgeConfig, embedder: Embedder, pool: WorkerPool, *, root: Any = None
) -> KnowledgeBase:
    """An unopened base; ``root`` (the whole config) anchors relative ``index``/``source`` paths."""
    sources = cfg.source if isinstance(cfg.source, list) else [cfg.source] if cfg.source else []
    return KnowledgeBase(
        name, cfg, embedder, pool,
        folder=resolve_path(cfg.index, root),
        sources=[resolve_path(s, root) for s in sources],
    )  # fmt: skip


def embedder_config(root: Any, name: str) -> EmbedderConfig:
    """The ``embeddings:`` entry called ``name``; ``default`` is ``{kind: local}`` when unset."""
    configured: dict[str, EmbedderConfig] = getattr(root, "embeddings", None) or {}
    if name in configured:
        return configured[name]
    if name == "default":
        return EmbedderConfig()
    from ..errors import ConfigError

    raise ConfigError(f"Expected an embedder called `{name}` under `embeddings`, got none")
