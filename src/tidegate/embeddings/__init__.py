"""Embedders: texts in, L2-normalized float32 vectors out, batched and cached.

``build_embedder`` turns one ``embeddings:`` entry into an unstarted embedder; the Gateway owns it
(``await e.start()`` at startup, ``await e.close()`` at shutdown) and shares it between knowledge
bases and the semantic cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._concurrency import WorkerPool
from ..config.knowledge import EmbedderConfig
from ..errors import ConfigError
from .base import BatchingEmbedder, Embedder, InputKind, normalize
from .hashing import HashEmbedder

if TYPE_CHECKING:
    from ..providers.upstream import Upstream

__all__ = [
    "BatchingEmbedder",
    "Embedder",
    "EmbedderConfig",
    "HashEmbedder",
    "InputKind",
    "build_embedder",
    "normalize",
]


def build_embedder(
    name: str,
    cfg: EmbedderConfig,
    pool: WorkerPool,
    *,
    upstream: Upstream | None = None,
) -> BatchingEmbedder:
    """An unstarted embedder for config entry ``name``.

    ``upstream`` lets an ``openai`` embedder reuse a Gateway-owned upstream (its session and
    limits); without it the embedder opens and closes its own.
    """
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "batch_wait": float(cfg.batch_wait),
        "cache_size": cfg.cache_size,
        "cache_ttl": float(cfg.cache_ttl),
    }
    if cfg.kind == "hash":
        return HashEmbedder(name, pool=pool, dim=cfg.dim or 512, **common)
    if cfg.kind == "local":
        from .local import LocalEmbedder

        return LocalEmbedder(name, pool=pool, model=cfg.model, threads=cfg.threads, **common)
    if cfg.kind == "openai":
        if cfg.url is None and upstream is None:
            raise ConfigError(
                f"Expected a `url` for an openai embedder, got nothing - at `$.embeddings.{name}.url`"
            )
        from .openai import OpenAIEmbedder

        return OpenAIEmbedder(
            name, url=cfg.url, model=cfg.model, api_key=cfg.api_key, dim=cfg.dim,
            timeout=float(cfg.timeout), max_inflight=cfg.max_inflight, upstream=upstream, **common,
        )  # fmt: skip
    raise ConfigError(f"Expected kind `local`, `hash` or `openai`, got `{cfg.kind}` - at `$.embeddings.{name}.kind`")
