"""What every embedder shares: lifecycle, a bounded TTL cache and micro-batching.

Embedding cost is dominated by per-call overhead (a model invocation, an HTTP round trip), so many
small concurrent requests are merged into one batch. Batching adapts to load: when the model is
idle a request goes out at once (with whatever arrived in the same loop turn); while batches are
running, requests collect for at most ``batch_wait`` or until ``batch_size`` texts are pending,
and whatever collected goes out as soon as a batch finishes. Recent embeddings are cached
by text because callers (semantic cache, retrieval) repeat themselves. Subclasses only say how to
embed one batch; they never see the queue, the cache or the event loop's clock.

An embedder cheap enough to run on the loop (``hash``) also says how to embed a few texts right
away (:meth:`BatchingEmbedder._embed_now`): when nothing is queued or running, such a call skips
the queue, whose future, task and extra loop turn cost more than the embedding itself, and (one
uncached text, the request path's case) the bookkeeping around it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from cachetools import TTLCache

from ..errors import Overloaded, UpstreamError, UsageError

__all__ = ["BatchingEmbedder", "Embedder", "InputKind"]

InputKind = Literal["query", "document"]
"""Asymmetric models (e5) embed queries and passages differently; the others ignore it."""

_State = Literal["unopened", "open", "closed"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    name: str

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str:
        """Identifies the vector space: vectors from different ids must never share an index."""
        ...

    @property
    def default_threshold(self) -> float:
        """A sensible cosine cut-off for "relevant" with this model (thresholds do not transfer)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def embed(self, texts: list[str], *, kind: InputKind = "query") -> np.ndarray: ...


class _Job:
    """One text waiting for a batch; the future is the caller's."""

    __slots__ = ("future", "kind", "text")

    def __init__(self, text: str, kind: InputKind, future: asyncio.Future[np.ndarray]) -> None:
        self.text = text
        self.kind = kind
        self.future = future


class BatchingEmbedder:
    """Base class: subclasses implement :meth:`_embed_batch` (and optionally ``_open/_close``).

    ``max_inflight`` bounds how many batches run at once: 1 for in-process models (the pool is
    shared and a model saturates the cores anyway), more for remote endpoints.
    """

    max_inflight: int = 1
    default_threshold: float = 0.5
    inline_texts: int = 0
    """Up to this many texts go through :meth:`_embed_now` on the loop when the embedder is idle."""

    def __init__(
        self,
        name: str,
        *,
        dim: int | None,
        model_id: str,
        batch_size: int = 32,
        batch_wait: float = 0.002,
        cache_size: int = 4096,
        cache_ttl: float = 600.0,
        max_pending: int | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Expected `batch_size` >= 1, got `{batch_size}`")
        self.name = name
        self._dim = dim
        self._model_id = model_id
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.max_pending = max_pending if max_pending is not None else batch_size * 256
        self._cache: TTLCache[tuple[str, str], np.ndarray] | None = (
            TTLCache(maxsize=cache_size, ttl=cache_ttl, timer=timer) if cache_size > 0 else None
        )
        self._pending: list[_Job] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight = 0
        self._state: _State = "unopened"
        self.calls = 0
        """Batches sent to the model (tests and metrics read it to see batching work)."""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise UsageError(f"Embedder `{self.name}` does not know its dimension before start()")
        return self._dim

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def state(self) -> _State:
        return self._state

    async def start(self) -> None:
        if self._state != "unopened":
            raise UsageError(f"Embedder `{self.name}` is {self._state}; start() runs once")
        self._slots = asyncio.Semaphore(self.max_inflight)
        await self._open()
        self._state = "open"
        if self._dim is None:
            # Learn the dimension now, so an index can be checked against it before first use.
            probe = await self._run_batch_checked(["dimension probe"], "query")
            self._dim = int(probe.shape[1])

    async def close(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, []
        for job in pending:
            if not job.future.done():
                job.future.set_exception(UsageError(f"Embedder `{self.name}` was closed"))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close()

    async def __aenter__(self) -> BatchingEmbedder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what subclasses provide -----------------------------------------------------------

    async def _open(self) -> None:
        """Load the model / open the session."""

    async def _close(self) -> None:
        """Release what ``_open`` took."""

    async def _embed_batch(self, texts: list[str], kind: InputKind) -> np.ndarray:
        raise NotImplementedError

    def _embed_now(self, texts: list[str], kind: InputKind) -> np.ndarray | None:
        """L2-normalized rows for a few texts, computed synchronously (only called when
        ``inline_texts`` allows it), or None to take the usual path for these texts."""
        raise NotImplementedError

    # -- the public call --------------------------------------------------------------------

    async def embed(self, texts: list[str], *, kind: InputKind = "query") -> np.ndarray:
        """Vectors for ``texts`` in order: one row each, float32, L2-normalized."""
        if self._state != "open":
            raise UsageError(f"Embedder `{self.name}` is {self._state}; call start() first")
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of texts, not one string")
        if len(texts) == 1 and self.inline_texts and not self._pending and not self._inflight:
            row = self._embed_one_now(texts[0], kind)
            if row is not None:
                return row
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        missing: dict[str, list[int]] = {}
        cache = self._cache
        for position, text in enumerate(texts):
            hit = cache.get((kind, text)) if cache is not None else None
            if hit is not None:
                out[position] = hit
            else:
                missing.setdefault(text, []).append(position)
        if not missing:
            return out
        unique = list(missing)
        now = None
        if len(unique) <= self.inline_texts and not self._pending and not self._inflight:
            now = self._embed_now(unique, kind)
        if now is not None:
            self.calls += 1
            rows = self._shaped(now, len(unique))
        elif len(unique) >= self.batch_size:
            # A bulk call (ingest) already is a batch: send it in slices, skipping the queue.
            parts = [unique[i : i + self.batch_size] for i in range(0, len(unique), self.batch_size)]
            vectors = await asyncio.gather(*(self._run_batch_checked(p, kind) for p in parts))
            rows = np.concatenate(vectors)
        else:
            rows = await self._enqueue(unique, kind)
        # Bulk calls (ingest) are not cached: their texts rarely come back, and they would
        # flush the recent queries that do.
        keep = cache is not None and len(unique) < self.batch_size
        for text, row in zip(unique, rows, strict=True):
            for position in missing[text]:
                out[position] = row
            if keep:
                stored = row.copy()  # a view would pin the whole batch in memory
                stored.flags.writeable = False
                cache[(kind, text)] = stored  # type: ignore[index]
        return out

    def _embed_one_now(self, text: str, kind: InputKind) -> np.ndarray | None:
        """One text from the cache or :meth:`_embed_now`, touching as little numpy as we can."""
        cache = self._cache
        key = (kind, text)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            return hit[None, :].copy()
        rows = self._embed_now([text], kind)
        if rows is None:
            return None
        self.calls += 1
        rows = self._shaped(rows, 1)
        if cache is not None:
            stored = rows[0].copy()
            stored.flags.writeable = False
            cache[key] = stored
        return rows

    # -- batching ---------------------------------------------------------------------------

    async def _enqueue(self, texts: list[str], kind: InputKind) -> np.ndarray:
        if len(self._pending) + len(texts) > self.max_pending:
            raise Overloaded(
                f"Embedder `{self.name}` has {len(self._pending)} texts waiting (max {self.max_pending})",
                retry_after=1.0,
                rule=f"embeddings.{self.name}",
            )
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        self._pending.extend(_Job(t, kind, f) for t, f in zip(texts, futures, strict=True))
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif self._flush_handle is None:
            idle = self._inflight < self.max_inflight
            self._flush_handle = loop.call_later(0.0 if idle else self.batch_wait, self._flush)
        try:
            rows = await asyncio.gather(*futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return np.stack(rows) if rows else np.empty((0, self.dim), np.float32)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        while self._pending:
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            task = asyncio.get_running_loop().create_task(self._serve(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, batch: list[_Job]) -> None:
        # Jobs whose caller gave up are dropped before they cost anything.
        live = [job for job in batch if not job.future.done()]
        by_kind: dict[InputKind, list[_Job]] = {}
        for job in live:
            by_kind.setdefault(job.kind, []).append(job)
        for kind, jobs in by_kind.items():
            try:
                vectors = await self._run_batch_checked([job.text for job in jobs], kind)
            except asyncio.CancelledError:
                # Only close() cancels us; the callers themselves were not cancelled.
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(UsageError(f"Embedder `{self.name}` was closed"))
                raise
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, row in zip(jobs, vectors, strict=True):
                if not job.future.done():
                    job.future.set_result(row)

    async def _run_batch_checked(self, texts: list[str], kind: InputKind) -> np.ndarray:
        assert self._slots is not None
        async with self._slots:
            self.calls += 1
            self._inflight += 1
            try:
                raw = await self._embed_batch(texts, kind)
            finally:
                self._inflight -= 1
                if self._pending and self._state == "open":
                    self._flush()  # what collected while we were busy goes out now
        return normalize(self._shaped(np.asarray(raw, dtype=np.float32), len(texts)))

    def _shaped(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """``vectors`` if they are ``count`` rows of the right dimension, else an error."""
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise UpstreamError(
                f"Expected {count} embeddings from `{self.name}`, got shape {vectors.shape}",
                upstream=self.name,
            )
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise UpstreamError(
                f"Expected embeddings of dimension {self._dim} from `{self.name}`,"
                f" got {vectors.shape[1]}",
                upstream=self.name,
            )
        return vectors


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalization; zero rows stay zero instead of becoming NaN."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    out: np.ndarray = vectors / norms
    return out
