"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, TEI, vLLM, Ollama).

The HTTP side is :class:`tidegate.providers.upstream.Upstream`, so timeouts, connection pooling
and error mapping (status, Retry-After) are the same as for chat upstreams. We ask for base64
(4 bytes per float instead of ~10 characters of JSON) and accept plain float lists from servers
that ignore the hint.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ..config.schema import ModelConfig
from ..errors import UpstreamError
from ..providers.upstream import Upstream
from .base import BatchingEmbedder, InputKind

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder(BatchingEmbedder):
    """Batches go out as one request each, up to ``max_inflight`` at a time."""

    default_threshold = 0.5

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 30.0,
        max_inflight: int = 4,
        upstream: Upstream | None = None,
        **options: Any,
    ) -> None:
        if upstream is None:
            if url is None:
                raise ValueError("OpenAIEmbedder needs `url` or an `upstream`")
            config = ModelConfig(
                url=url, model=model or name, api_key=api_key, kind="embeddings",
                timeout=timeout, max_concurrency=max(4, max_inflight),  # type: ignore[arg-type]
            )  # fmt: skip
            upstream = Upstream(f"embeddings.{name}", config)
            self._owns_upstream = True
        else:
            self._owns_upstream = False
        self.upstream = upstream
        self.model = model or upstream.model
        self.max_inflight = max_inflight
        super().__init__(name, dim=dim, model_id=f"openai:{self.model}", **options)
        self._send_dimensions = dim is not None and "text-embedding-3" in self.model

    async def _open(self) -> None:
        if self._owns_upstream:
            await self.upstream.start()

    async def _close(self) -> None:
        if self._owns_upstream:
            await self.upstream.close()

    async def _embed_batch(self, texts: list[str], kind: InputKind) -> np.ndarray:
        body: dict[str, Any] = {"input": texts, "encoding_format": "base64"}
        if self._send_dimensions:
            body["dimensions"] = self._dim
        reply = await self.upstream.embeddings(body)
        return _vectors(reply, len(texts), self.name)


def _vectors(reply: dict[str, Any], count: int, name: str) -> np.ndarray:
    data = reply.get("data")
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else type(data).__name__
        raise UpstreamError(
            f"Expected {count} items in `data` from embeddings `{name}`, got {got}", upstream=name
        )
    rows: list[np.ndarray | None] = [None] * count
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise UpstreamError(f"Expected objects in `data` from `{name}`", upstream=name)
        index = item.get("index", position)
        raw = item.get("embedding")
        if isinstance(raw, str):
            vector = np.frombuffer(base64.b64decode(raw), dtype="<f4")
        elif isinstance(raw, list):
            vector = np.asarray(raw, dtype=np.float32)
        else:
            raise UpstreamError(
                f"Expected `embedding` as a list or base64 string from `{name}`,"
                f" got `{type(raw).__name__}`",
                upstream=name,
            )
        if not isinstance(index, int) or not 0 <= index < count:
            raise UpstreamError(f"Expected `index` in [0, {count}) from `{name}`", upstream=name)
        rows[index] = vector
    if any(row is None for row in rows):
        raise UpstreamError(f"Embeddings `{name}` repeated an index", upstream=name)
    try:
        return np.stack(rows)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UpstreamError(
            f"Embeddings `{name}` returned vectors of different lengths", upstream=name
        ) from exc
