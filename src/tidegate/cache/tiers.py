"""The storage side of the response cache: the tiers, searched in order, and how answers go in.

Lookup order: curated (normalized) → exact → normalized → [one embedding] → curated (semantic)
→ semantic. Everything before the embedding is a dict lookup, so exact repeats cost microseconds
and only new phrasings pay for a model call; and only when something is stored that the question
could be served from (same partition and guard signature, or curated answers). Otherwise it is
embedded after its answer has gone out, on an idle loop turn. :class:`~tidegate.cache.response.ResponseCache`
decides *whether* to look and store (directives, scope, temperature); this module decides *how*.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from .._concurrency import WorkerPool
from ..config.cache import CacheConfig
from ..embeddings.base import Embedder
from .control import Directives
from .curated import CuratedIndex, load_curated
from .entry import STORABLE_FINISH, Entry, stream_is_complete
from .exact import ExactStore
from .guard import refusal
from .keys import CacheKey
from .metrics import CacheMetrics
from .policy import RoutePolicy
from .semantic import SemanticEntry, SemanticStore
from .text import Features, features, normalize_question
from .vectors import idle_turn

__all__ = ["Hit", "Plan", "Tiers"]

HitKind = Literal["exact", "normalized", "semantic", "curated"]
_SWEEP_BATCH = 10_000
_FEATURES_KEPT = 4096
_EMBED_WAITING = 16
"""Stored questions still without a vector that a lookup embeds along with its own (the newest)."""


class Plan:
    """One request's cache decisions, made before any I/O and carried through lookup and store."""

    __slots__ = ("directives", "forward", "key", "model", "norm", "policy", "signature", "stale", "vector")

    def __init__(self, key: CacheKey | None, policy: RoutePolicy, directives: Directives, model: Any) -> None:
        self.key = key
        self.policy = policy
        self.directives = directives
        self.model = model
        self.norm = normalize_question(key.question) if key is not None and key.question else None
        self.forward: str | None = None  # a Cache-Status value when the cache stays out entirely
        self.vector: Any = None  # the question's embedding, once computed
        self.signature = ""  # which of the partition's indexes the question is searched in
        self.stale = False  # an entry was found but was older than max-age


class Hit:
    __slots__ = ("answer", "entry", "kind", "similarity")

    def __init__(
        self, kind: HitKind, entry: Entry | None, *, answer: str | None = None, similarity: float | None = None
    ) -> None:
        self.kind = kind
        self.entry = entry
        self.answer = answer  # curated hits carry text, not an entry
        self.similarity = similarity


class Tiers:
    def __init__(
        self,
        config: CacheConfig,
        *,
        clock: Callable[[], float],
        pool: WorkerPool,
        embedder: Embedder | None,
        metrics: CacheMetrics,
    ) -> None:
        self.config = config
        self._clock = clock
        self.embedder = embedder
        self.metrics = metrics
        sem = config.semantic
        self.exact = ExactStore(config.exact.max_entries, clock=clock, evicted=self._evicted("exact"))
        self.semantic = SemanticStore(
            max_entries=sem.max_entries, clock=clock, pool=pool,
            dim=embedder.dim if embedder is not None else None, dtype=sem.dtype,
            exact_below=sem.exact_below, evicted=self._evicted("semantic"),
        )  # fmt: skip
        self.curated: CuratedIndex | None = None
        self._features: dict[str, Features] = {}  # a bounded memo, oldest out first
        exact, semantic = self.exact, self.semantic
        metrics.watch("exact", entries=exact.__len__, size=lambda: exact.bytes)
        metrics.watch("semantic", entries=semantic.__len__, size=lambda: semantic.bytes)

    async def load_curated(self, path: Path) -> None:
        index = CuratedIndex(load_curated(path))
        if self.embedder is not None and len(index):
            index.attach_vectors(await self.embedder.embed(index.questions))
        self.curated = index

    # -- lookup -------------------------------------------------------------------------------

    async def lookup(self, plan: Plan) -> Hit | None:
        key = plan.key
        assert key is not None
        norm = plan.norm
        if norm is not None and self.curated is not None:
            answer = self.curated.match_normalized(key.tenant, key.route, norm)
            if answer is not None:
                return Hit("curated", None, answer=answer, similarity=1.0)
        entry = self.exact.get(key.exact)
        if entry is not None and self._fresh(entry, plan.directives, plan):
            return Hit("exact", entry)
        if norm is None:
            return None
        item = self.semantic.get_normalized(key.partition, norm)
        if item is not None and self._fresh(item.entry, plan.directives, plan):
            self.semantic.touch(item)
            return Hit("normalized", item.entry)
        if self.embedder is None or not self.config.semantic.enabled:
            return None
        question = key.question
        assert question is not None
        plan.signature = signature = self.signature(question)
        # Questions stored a moment ago whose vector has not gone in yet (it does once their
        # answer is out): the ones this question could be served from are embedded now.
        waiting = [
            item for item in self.semantic.unindexed(key.partition)[-_EMBED_WAITING:]
            if self.signature(item.question) == signature
        ]  # fmt: skip
        if not waiting and not self._searchable(key, signature):
            # Nothing this question could be served from (a new order number, the first
            # question of a conversation): it is embedded after its answer has gone out.
            return None
        embed = self.embedder.embed
        try:
            plan.vector = (await embed([question]))[0]
            for item in waiting:  # one by one: the common single text takes the fast path
                self.semantic.put_vector(item, (await embed([item.question]))[0], signature)
        except Exception:
            self.metrics.error("embed").inc()
            return None
        return await self._nearest(plan, key, question)

    def _searchable(self, key: CacheKey, signature: str) -> bool:
        if self.semantic.searchable(key.partition, signature):
            return True
        return self.curated is not None and self.curated.searchable(key.tenant, key.route)

    async def _nearest(self, plan: Plan, key: CacheKey, question: str) -> Hit | None:
        threshold = plan.policy.threshold
        candidates: list[tuple[float, str, SemanticEntry | None, str | None]] = []
        if self.curated is not None:
            for curated_question, text, sim in self.curated.candidates(key.tenant, key.route, plan.vector):
                candidates.append((sim, curated_question, None, text))
        curated = bool(candidates)
        for found, sim in await self.semantic.search(key.partition, plan.vector, signature=plan.signature):
            candidates.append((sim, found.question, found, None))
        if curated:  # each list is best first already
            candidates.sort(key=_by_similarity)
        mine: Features | None = None
        refused = False
        for sim, other, item, answer in candidates:
            if sim < threshold:
                break
            if self.config.semantic.guard:
                mine = mine or self.features(question)
                reason = refusal(mine, self.features(other))
                if reason is not None:
                    self.metrics.refusal(reason).inc()
                    refused = True
                    continue
            if item is not None and not self._fresh(item.entry, plan.directives, plan):
                continue
            self.metrics.similar("served").observe(sim)
            if item is None:
                return Hit("curated", None, answer=answer, similarity=sim)
            self.semantic.touch(item)
            return Hit("semantic", item.entry, similarity=sim)
        if candidates:
            self.metrics.similar("refused" if refused else "below").observe(candidates[0][0])
        return None

    def _fresh(self, entry: Entry, directives: Directives, plan: Plan) -> bool:
        max_age = directives.max_age
        if max_age is not None and self._clock() - entry.created > max_age:
            plan.stale = True
            return False
        return True

    def signature(self, question: str) -> str:
        """The index of a partition ``question`` is stored and searched in: with the guard on,
        only questions whose numbers, dates and negations match can serve each other."""
        return self.features(question).signature if self.config.semantic.guard else ""

    def features(self, text: str) -> Features:
        """The guard's features of ``text``, memoized: a stored question is compared again and
        again. A dict, not an LRU: a lookup here is a C call (~0.05 µs against ~2 µs)."""
        memo = self._features
        found = memo.get(text)
        if found is None:
            found = memo[text] = features(text)
            if len(memo) > _FEATURES_KEPT:
                del memo[next(iter(memo))]
        return found

    # -- store --------------------------------------------------------------------------------

    @staticmethod
    def unstorable(response: Any) -> str | None:
        """Why a blocking ``response`` must not be stored, or None."""
        if not isinstance(response, dict):
            return "error"
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices:
            return "error"
        if any(not isinstance(c, dict) or c.get("finish_reason") not in STORABLE_FINISH for c in choices):
            return "finish_reason"
        return None

    def record(
        self,
        plan: Plan,
        response: dict[str, Any] | None,
        chunks: list[dict[str, Any]] | None,
        at: float | None = None,
    ) -> Callable[[], Awaitable[None]] | None:
        """Store an answer (arrived ``at``, by the cache's clock) in the exact and normalized
        tiers; return what is left to do, the question's vector, for later."""
        key = plan.key
        if key is None:
            return None
        now = self._clock() if at is None else at
        if chunks is not None:
            reason = None if stream_is_complete(chunks) else "partial"
        else:
            reason = self.unstorable(response)
        if reason is not None:
            self.metrics.skip(reason).inc()
            return None
        expires = now + plan.policy.exact_ttl
        if chunks is not None:
            entry = Entry.from_chunks(chunks, created=now, expires=expires)
        else:
            assert response is not None
            entry = Entry.from_completion(response, created=now, expires=expires)
        if len(entry.payload) > self.config.max_entry_size:
            self.metrics.skip("too_large").inc()
            return None
        self.exact.put(key.exact, entry)
        self.metrics.stored("stream" if chunks is not None else "completion").inc()
        if plan.norm is None or key.question is None:
            return None
        item = self.semantic.put_text(
            key.partition, key.question, plan.norm, entry.with_expiry(now + plan.policy.semantic_ttl)
        )
        if item is None or not self.semantic.indexed or not self.config.semantic.enabled:
            return None
        if plan.vector is not None:  # the lookup embedded the question: indexing it is cheap
            self.semantic.put_vector(item, plan.vector, plan.signature)
            return None
        embedder, question = self.embedder, key.question
        if embedder is None:
            return None
        self.semantic.expect_vector(item)

        async def index() -> None:  # the lookup did not embed it (no-cache, or nothing to compare)
            # On an idle loop turn: the next requests' own work (and upstream calls) go first,
            # and the embedding fills the time they spend waiting on their model.
            await idle_turn()
            try:
                vector = (await embedder.embed([question]))[0]
            except Exception:
                self.metrics.error("embed").inc()
                self.semantic.no_vector(item)
                return
            self.semantic.put_vector(item, vector, self.signature(question))

        return index

    async def store(
        self, plan: Plan, response: dict[str, Any] | None, chunks: list[dict[str, Any]] | None
    ) -> None:
        """:meth:`record` and the vector step at once."""
        later = self.record(plan, response, chunks)
        if later is not None:
            await later()

    def alias(self, key: CacheKey, entry: Entry) -> None:
        """Make ``key`` an exact hit for an entry found another way (the next repeat is cheap)."""
        self.exact.put(key.exact, entry)

    # -- housekeeping -------------------------------------------------------------------------

    async def sweep(self) -> int:
        removed = self.exact.sweep()
        while True:
            batch = await self.semantic.sweep(limit=_SWEEP_BATCH)
            removed += batch
            if batch < _SWEEP_BATCH:
                break
            await asyncio.sleep(0)  # let requests through between batches
        return removed

    def _evicted(self, tier: str) -> Callable[[str, Entry], None]:
        counter = self.metrics.eviction

        def evicted(reason: str, _entry: Entry) -> None:
            counter(tier, reason).inc()

        return evicted

    def stats(self) -> dict[str, Any]:
        sem = self.semantic
        return {
            "exact": {"entries": len(self.exact), "bytes": self.exact.bytes},
            "semantic": {
                "entries": len(sem), "bytes": sem.bytes, "partitions": sem.partitions,
                "vector_bytes": sem.vector_bytes,
                "embedder": self.embedder.name if self.embedder is not None else None,
            },
            "curated": len(self.curated) if self.curated is not None else 0,
        }  # fmt: skip

    async def aclose(self) -> None:
        await self.semantic.aclose()
        self.exact.clear()


def _by_similarity(candidate: tuple[float, str, SemanticEntry | None, str | None]) -> float:
    return -candidate[0]
