"""Semantic-cache quality at the shipped defaults, on our labeled pair set.

For each pair the first question is answered and stored, then the second is asked: a pair labeled
``hit`` should be served from the cache, a ``trap`` must not be. Every pair runs in its own tenant
through the real :class:`ResponseCache` (all tiers, guard and calibrated threshold included).
Run as a script for the per-kind table::

    python tests/cache/test_quality.py [hash|local|use|e5]
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tidegate._concurrency import WorkerPool
from tidegate.cache import ResponseCache
from tidegate.config.cache import CacheConfig
from tidegate.context import RequestContext
from tidegate.embeddings import HashEmbedder

PAIRS = Path(__file__).resolve().parents[2] / "examples" / "cache_pairs" / "pairs.jsonl"
LOCAL_MODELS = {"local": None, "use": "use-multilingual-v3", "e5": "multilingual-e5-small"}


def load_pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]


def _body(pair: dict[str, Any], side: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if pair.get(f"system_{side}"):
        messages.append({"role": "system", "content": pair[f"system_{side}"]})
    messages.extend(pair.get(f"context_{side}") or [])
    messages.append({"role": "user", "content": pair[side]})
    return {"model": "assistant", "messages": messages}


def _answer(text: str) -> Any:
    async def produce() -> dict[str, Any]:
        return {
            "id": "q", "object": "chat.completion", "created": 0, "model": "assistant",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }  # fmt: skip

    return produce


async def evaluate(cache: ResponseCache, pairs: list[dict[str, Any]], *, concurrency: int = 32) -> dict[str, Any]:
    """Served rates by label and kind; ``served`` lists the ids of pairs answered from the cache."""
    limit = asyncio.Semaphore(concurrency)

    async def ask(pair: dict[str, Any], side: str) -> str:
        async with limit:
            ctx = RequestContext(tenant=pair["id"])
            response = await cache.complete(_body(pair, side), ctx, _answer(f"{pair['id']}:{side}"))
            return str(response["choices"][0]["message"]["content"])

    await asyncio.gather(*(ask(p, "a") for p in pairs))
    answers = await asyncio.gather(*(ask(p, "b") for p in pairs))
    served = [p["id"] for p, text in zip(pairs, answers, strict=True) if text == f"{p['id']}:a"]
    served_set = set(served)
    by_kind: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for pair in pairs:
        row = by_kind[(pair["label"], pair["kind"] + ("/rephrased" if pair.get("style") else ""))]
        row[0] += pair["id"] in served_set
        row[1] += 1

    def rate(label: str) -> float:
        rows = [p for p in pairs if p["label"] == label]
        return sum(p["id"] in served_set for p in rows) / len(rows)

    return {
        "should_hit_served": rate("hit"), "traps_served": rate("trap"), "served": served,
        "by_kind": {f"{label} {kind}": (n, total) for (label, kind), (n, total) in sorted(by_kind.items())},
        "threshold": cache.threshold("assistant"),
    }  # fmt: skip


async def run(kind: str, pairs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    pairs = pairs if pairs is not None else load_pairs()
    pool = WorkerPool(max_workers=2, name="quality")
    try:
        if kind == "hash":
            embedder: Any = HashEmbedder("default", pool=pool)
        else:
            from tidegate.embeddings.local import LocalEmbedder

            embedder = LocalEmbedder("default", pool=pool, model=LOCAL_MODELS[kind])
        config = CacheConfig()
        async with embedder, ResponseCache(config, embedders={"default": embedder}, pool=pool) as cache:
            return await evaluate(cache, pairs)
    finally:
        pool.shutdown(wait=True)


def local_missing() -> str | None:
    from tidegate.embeddings.local import missing_packages, resolve_model

    missing = missing_packages(resolve_model(None))
    return f"the `local` extra is not installed (missing {', '.join(missing)})" if missing else None


def test_the_pair_set_is_big_and_covers_every_kind() -> None:
    pairs = load_pairs()
    kinds = collections.Counter((p["label"], p["kind"]) for p in pairs)
    assert len(pairs) >= 400
    assert len({p["id"] for p in pairs}) == len(pairs)
    for kind in ("negation", "entity", "number", "date", "scope", "multi_turn"):
        assert kinds[("trap", kind)] >= 25, kind
    for kind in ("paraphrase", "near_repeat", "multi_turn"):
        assert kinds[("hit", kind)] >= 25, kind


async def test_quality_with_the_hash_embedder() -> None:
    report = await run("hash")
    assert report["traps_served"] <= 0.03, report["by_kind"]
    assert report["should_hit_served"] >= 0.30, report["by_kind"]  # lexical only: near-repeats


@pytest.mark.skipif(local_missing() is not None, reason=local_missing() or "")
async def test_quality_with_the_local_embedder() -> None:
    report = await run("local")
    assert report["traps_served"] <= 0.03, report["by_kind"]
    assert report["should_hit_served"] >= 0.60, report["by_kind"]
    assert report["by_kind"].get("trap multi_turn", (0, 1))[0] == 0


def _print(kind: str, report: dict[str, Any]) -> None:
    print(f"embedder={kind} threshold={report['threshold']:.2f}  "
          f"should-hit served {report['should_hit_served']:.1%}  traps served {report['traps_served']:.1%}")  # fmt: skip
    for name, (n, total) in report["by_kind"].items():
        print(f"  {name:<28} {n:>4}/{total:<4} {n / total:6.1%}")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["hash", "local"]:
        _print(name, asyncio.run(run(name)))
