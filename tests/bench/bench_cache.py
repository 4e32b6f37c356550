"""Response-cache benchmark: hits, misses, lookups at size, memory, and (optionally) quality.

(a) exact hit through the middleware, end to end: over HTTP (uvicorn + uvloop in its own process,
    c=1) and as an in-process ASGI call, against a surface route that does no work in the same run;
(b) semantic hit (new phrasing each time: one embedding + search + guard), local model if installed;
(c) miss overhead: every request a new question, cache on vs cache off, same upstream (simulator);
(d) lookup at N cached entries (default 100k) in one scope: exact tier and semantic search (HNSW);
(e) memory per entry (Python heap via tracemalloc, plus the vector index);
(f) ``--quality``: traps served / should-hit served on examples/cache_pairs at the shipped defaults.

    python tests/bench/bench_cache.py [--quick] [--entries N] [--dtype f32|i8] [--quality] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, free_port, pct, pin_apart, process, simulator_cmd, table, uvicorn_cmd

from tidegate import Gateway, TidegateMiddleware
from tidegate._concurrency import WorkerPool
from tidegate.cache import Entry, ResponseCache, build_key, normalize_question
from tidegate.config import load_config, parse_config
from tidegate.config.cache import CacheConfig
from tidegate.context import RequestContext
from tidegate.embeddings import HashEmbedder
from tidegate.embeddings.hashing import hash_vectors

QUESTION = "How do I get a refund for my order?"
_encode = msgspec.json.Encoder().encode


def cached_gateway(base: dict[str, Any], cache: dict[str, Any] | None = None, embedder: str = "hash") -> Gateway:
    """The real Gateway with a `cache:` section and `default` embedder of the given kind."""
    default: dict[str, Any] = {"kind": embedder} if embedder == "local" else {"kind": "hash", "dim": 384}
    return Gateway(parse_config({**base, "cache": cache or {}, "embeddings": {"default": default}}))


async def _host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"pong"})


def _app_from_env() -> Any:
    path = os.environ.get("TIDEGATE_BENCH_CACHE_CONFIG")
    if not path:
        return None
    return TidegateMiddleware(_host, gateway=Gateway(load_config(path)))


app = _app_from_env()  # what the uvicorn process serves


# -- in-process ASGI driver ------------------------------------------------------------------------


class Asgi:
    """Calls an ASGI app without sockets; ``call`` returns (status, headers, seconds)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], float]:
        raw = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": raw, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}  # fmt: skip
        sent = False
        out: dict[str, Any] = {}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
                out["headers"] = {k.decode(): v.decode() for k, v in message.get("headers", [])}

        started = time.perf_counter()
        await self.app(scope, receive, send)
        return out["status"], out["headers"], time.perf_counter() - started


def chat(question: str, **extra: Any) -> bytes:
    return _encode({"model": "light", "messages": [{"role": "user", "content": question}], "max_tokens": 16, **extra})


def ms(values: list[float]) -> str:
    return f"{pct(values, 0.5) * 1000:.3f} / {pct(values, 0.99) * 1000:.3f}"


# -- (a) exact hits --------------------------------------------------------------------------------


async def exact_hits(sim_url: str, quick: bool, cpus: set[int] | None) -> None:
    n = 2000 if quick else 10_000
    gateway = cached_gateway({"models": {"light": {"url": sim_url}}})
    asgi = Asgi(TidegateMiddleware(_host, gateway=gateway))
    await gateway.start()
    status, _headers, _ = await asgi.call("POST", "/ai/v1/chat/completions", chat(QUESTION))
    assert status == 200, status
    hit, base = [], []
    for _ in range(500):
        await asgi.call("POST", "/ai/v1/chat/completions", chat(QUESTION))
    for _ in range(n):
        _, h, seconds = await asgi.call("POST", "/ai/v1/chat/completions", chat(QUESTION))
        hit.append(seconds)
        base.append((await asgi.call("GET", "/ai/v1/models"))[2])
    assert h["cache-status"].endswith("detail=exact"), h
    await gateway.stop()
    rows = [["in-process ASGI call", ms(base), ms(hit), f"{pct(hit, 0.5) / pct(base, 0.5):.2f}x"]]

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(f"models:\n  light: {{url: '{sim_url}'}}\ncache: {{}}\nembeddings: {{default: {{kind: hash, dim: 384}}}}\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"TIDEGATE_BENCH_CACHE_CONFIG": str(cfg)}
        with process(uvicorn_cmd("tests.bench.bench_cache:app", port), ready_url=url, env=env, cpus=cpus):
            async with aiohttp.ClientSession() as client:
                body = chat(QUESTION)
                hdrs = {"content-type": "application/json"}
                http_hit, http_base = [], []
                for i in range(n // 2 + 200):
                    started = time.perf_counter()
                    async with client.post(url + "/ai/v1/chat/completions", data=body, headers=hdrs) as resp:
                        await resp.read()
                        status = resp.headers.get("cache-status", "")
                    elapsed = time.perf_counter() - started
                    started = time.perf_counter()
                    async with client.get(url + "/ai/v1/models") as resp:
                        await resp.read()
                    if i >= 200:
                        http_hit.append(elapsed)
                        http_base.append(time.perf_counter() - started)
                assert status.endswith("detail=exact"), status
    rows.insert(0, ["HTTP c=1 (uvicorn+uvloop, aiohttp client)", ms(http_base), ms(http_hit),
                    f"{pct(http_hit, 0.5) / pct(http_base, 0.5):.2f}x"])  # fmt: skip
    table("(a) exact hit through the middleware, end to end (ms p50 / p99; target < 1 / < 3)",
          ["path", "GET /v1/models (no work)", "exact hit", "ratio p50"], rows)  # fmt: skip


# -- (b) semantic hits -----------------------------------------------------------------------------


def _local_available() -> bool:
    from tidegate.embeddings.local import missing_packages, resolve_model

    return not missing_packages(resolve_model(None))


def _fillers(n: int) -> list[str]:
    rng = random.Random(0)
    return ["".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(n)]


async def semantic_hits(sim_url: str, quick: bool) -> None:
    kind = "local" if _local_available() else "hash"
    n = 200 if quick else 1000
    gateway = cached_gateway({"models": {"light": {"url": sim_url}}}, embedder=kind)
    asgi = Asgi(TidegateMiddleware(_host, gateway=gateway))
    await gateway.start()
    await asgi.call("POST", "/ai/v1/chat/completions", chat(QUESTION))
    embedder = gateway.cache.embedder
    assert embedder is not None
    served, lat, embed = 0, [], []
    for word in _fillers(n):
        _, headers, seconds = await asgi.call("POST", "/ai/v1/chat/completions", chat(f"How do I get a refund for my order {word}?"))
        lat.append(seconds)
        served += headers.get("cache-status", "").endswith("detail=semantic")
        started = time.perf_counter()
        await embedder.embed([f"how can I get my money back {word}"])
        embed.append(time.perf_counter() - started)
    await gateway.stop()
    table(f"(b) semantic hit, new phrasing each request ({kind} embedder; ms p50 / p99)",
          ["measure", "p50 / p99", "note"],
          [["semantic hit (embed + search + guard)", ms(lat), f"{served}/{n} served semantically"],
           ["one embedding alone", ms(embed), "the dominant part"]])  # fmt: skip


# -- (c) miss overhead -----------------------------------------------------------------------------


async def _prefill(gateway: Gateway, questions: list[str]) -> None:
    """Put answered ``questions`` into the scope the miss loop asks in (a large partition)."""
    cache = gateway.cache
    assert cache is not None
    vectors = hash_vectors(questions, 384)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    template = msgspec.json.decode(chat("x"))
    key = build_key(template, tenant=None, route="light")
    assert key is not None
    now = time.monotonic()
    rows = [(q, normalize_question(q), vectors[i], Entry.from_completion(_response(i), created=now, expires=now + 3600))
            for i, q in enumerate(questions)]  # fmt: skip
    await cache.tiers.semantic.put_many(key.partition, rows, signature=cache.tiers.signature)
    await cache.settle()


async def miss_overhead(sim_url: str, quick: bool) -> None:
    n = 400 if quick else 3000
    big = 2000 if quick else 20_000
    base = {"models": {"light": {"url": sim_url, "max_concurrency": 16}}}
    prefilled = _questions(big, seed=4)
    known = set(prefilled)
    wordings = [q for q in _questions(2 * n + len(known) // 50, seed=9) if q not in known]  # fresh for every row

    def numbers(i: int) -> str:
        return f"Where is parcel {i} going?"

    def worded(i: int) -> str:
        return wordings[i]

    graph = cached_gateway(base, {"semantic": {"exact_below": big // 2}})
    graph_i8 = cached_gateway(base, {"semantic": {"exact_below": big // 2, "dtype": "i8"}})
    hashed = cached_gateway(base)  # the row whose misses embed on their path: timed in place
    rows_of: dict[str, tuple[Gateway, Any]] = {
        "no cache": (Gateway(parse_config(base)), numbers),
        "exact + normalized": (cached_gateway(base, {"semantic": {"enabled": False}}), numbers),
        f"+ semantic: new parcel numbers, scope growing to {n:,}": (cached_gateway(base), numbers),
        **({f"+ semantic (MiniLM): new parcel numbers, scope growing to {n:,}": (cached_gateway(base, embedder="local"), numbers)}
           if _local_available() else {}),
        f"+ semantic: new wordings, scope growing to {n:,}": (hashed, worded),
        f"+ semantic: new wordings, scope of {big:,} (HNSW f32)": (graph, worded),
        f"+ semantic: new wordings, scope of {big:,} (HNSW i8)": (graph_i8, worded),
    }
    apps = {name: Asgi(TidegateMiddleware(_host, gateway=g)) for name, (g, _) in rows_of.items()}
    for g, _ in rows_of.values():
        await g.start()
    for g in (graph, graph_i8):
        await _prefill(g, prefilled)
        assert g.cache is not None and "hnsw" in {
            index.mode for p in g.cache.tiers.semantic._partitions.values() for index in p.indexes.values()
        }
    results: dict[str, list[float]] = {name: [] for name in apps}
    served = dict.fromkeys(apps, 0)
    inside: list[float] = []  # the embedding's own time inside the semantic requests
    embedder = hashed.cache.embedder if hashed.cache is not None else None
    assert embedder is not None
    plain_embed = embedder.embed

    async def timed_embed(texts: list[str], **kw: Any) -> np.ndarray:
        started = time.perf_counter()
        try:
            return await plain_embed(texts, **kw)
        finally:
            inside.append(time.perf_counter() - started)

    embedder.embed = timed_embed  # type: ignore[method-assign]
    asked = 0
    for _round in range(4):
        for name, asgi in apps.items():
            question = rows_of[name][1]
            for i in range(asked, asked + n // 4):
                _, headers, seconds = await asgi.call("POST", "/ai/v1/chat/completions", chat(question(i)))
                if "hit" in headers.get("cache-status", "").split("; "):
                    served[name] += 1  # the guard let a near-duplicate through: not a miss
                else:
                    results[name].append(seconds)
            gateway = rows_of[name][0]
            if gateway.cache is not None:  # work left after the answers (late embeddings, inserts)
                await gateway.cache.settle()  # must not run into the next row's timings
        asked += n // 4
    embedder.embed = plain_embed  # type: ignore[method-assign]
    embed = []
    for i in range(n // 4):  # texts like the ones timed in place, never asked
        started = time.perf_counter()
        await embedder.embed([wordings[-1 - i]])
        embed.append(time.perf_counter() - started)
    for g, _ in rows_of.values():
        await g.stop()
    base_p50 = pct(results["no cache"], 0.5)
    rows = [[name + (f" ({served[name]} hits left out)" if served[name] else ""), ms(v),
             f"+{(pct(v, 0.5) - base_p50) * 1000:.3f}"] for name, v in results.items()]  # fmt: skip
    rows.append(["one hash embedding, alone in a loop", ms(embed), "(part of the semantic rows)"])
    rows.append(["one hash embedding, inside those requests", ms(inside), "(the same call, in place)"])
    table("(c) miss overhead: every request a new question, simulator upstream (ms; target < 0.3 + one embedding: "
          f"{0.3 + pct(embed, 0.5) * 1000:.3f} with the embedding alone, {0.3 + pct(inside, 0.5) * 1000:.3f} in place)",
          ["mode", "p50 / p99", "added p50"], rows)  # fmt: skip
    print("  parcel numbers: each number is its own guard signature, so a new one has nothing to compare with and is"
          " embedded after its answer. New wordings: one signature, and the nearest few of each miss are near-duplicates"
          f" the guard reads and refuses (the hard case). Below {8192:,} vectors a signature is scanned by brute force (sign bits, shortlist re-scored in"
          " float32); larger ones use an HNSW graph, which each stored miss enters later, on an idle loop turn.")


# -- (d) lookup at size, (e) memory ------------------------------------------------------------------

_SUBJECTS = "order subscription refund password invoice account card delivery plan seat booking ticket parcel router phone".split()
_VERBS = "cancel change track reset update download find check delete renew transfer upgrade".split()
_KINDS = ("old spare main shared family travel business student premium basic digital paper mobile home work"
          " backup joint personal company school guest trial gift corporate").split()  # fmt: skip
_PLACES = ("abroad|online|overseas|here|instead|quickly|safely|again|as well|at checkout|in the app|on the website"
           "|by phone|by email|in store|with support|from home|for a friend|for my team|myself").split("|")  # fmt: skip


def _questions(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct questions with no numbers, dates or negations (one guard signature), many
    of them one word apart: a FAQ-like scope, and the guard's hardest work on a miss."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        q = (f"How do I {rng.choice(_VERBS)} my {rng.choice(_KINDS)} {rng.choice(_SUBJECTS)}"
             f" for the {rng.choice(_SUBJECTS)} {rng.choice(_PLACES)}?")  # fmt: skip
        out[q] = None
    return list(out)


def _response(i: int) -> dict[str, Any]:
    text = ("To do that, open Settings, choose Account, then follow the steps shown. " * 6)[:420] + str(i)
    return {"id": f"chatcmpl-{i:08d}", "object": "chat.completion", "created": 1700000000, "model": "light",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 96, "total_tokens": 117}}  # fmt: skip


async def _fill(cache: ResponseCache, questions: list[str], vectors: np.ndarray | None) -> None:
    tiers = cache.tiers
    now = time.monotonic()
    rows = []
    partition = b""
    for i, q in enumerate(questions):
        key = build_key({"model": "light", "messages": [{"role": "user", "content": q}]}, tenant="acme", route="light")
        assert key is not None
        entry = Entry.from_completion(_response(i), created=now, expires=now + 3600)
        tiers.exact.put(key.exact, entry)
        partition = key.partition
        rows.append((q, normalize_question(q), vectors[i] if vectors is not None else None, entry.with_expiry(now + 3600)))
    await tiers.semantic.put_many(partition, rows, signature=tiers.signature)


async def lookups(entries: int, dtype: str, quick: bool) -> None:
    pool = WorkerPool(max_workers=2)
    rows = []
    questions = _questions(entries)
    vectors = hash_vectors(questions, 384)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for size in (1000, entries):
        emb = HashEmbedder("default", pool=pool, dim=384)
        cfg = msgspec.convert({"exact": {"max_entries": size * 2}, "semantic": {"max_entries": size * 2, "dtype": dtype}}, CacheConfig)
        async with emb, ResponseCache(cfg, embedders={"default": emb}, pool=pool) as cache:
            started = time.perf_counter()
            await _fill(cache, questions[:size], vectors[:size])
            await cache.tiers.semantic.settle()
            build = time.perf_counter() - started
            sample = random.Random(1).sample(range(size), 500)
            exact, search = [], []

            async def never() -> dict[str, Any]:
                raise AssertionError("a hit was expected")

            for i in sample:
                body = {"model": "light", "messages": [{"role": "user", "content": questions[i]}]}
                started = time.perf_counter()
                await cache.complete(body, RequestContext(tenant="acme"), never)
                exact.append(time.perf_counter() - started)
            key = build_key({"model": "light", "messages": [{"role": "user", "content": "x"}]}, tenant="acme", route="light")
            assert key is not None
            found = 0
            for i in sample:
                started = time.perf_counter()
                result = await cache.tiers.semantic.search(key.partition, vectors[i], 4)
                search.append(time.perf_counter() - started)
                found += bool(result) and result[0][0].question == questions[i]
            mode = "hnsw" if size >= cache.config.semantic.exact_below else "exact (numpy)"
            index_bytes = cache.stats()["semantic"]["vector_bytes"] / size
            rows.append([f"{size:,}", f"{build:.1f} s", f"{pct(exact, 0.5) * 1e6:.0f} / {pct(exact, 0.99) * 1e6:.0f}",
                         f"{pct(search, 0.5) * 1e6:.0f} / {pct(search, 0.99) * 1e6:.0f}",
                         f"{mode}, recall@1 {found / len(sample):.2f}, {index_bytes:,.0f} B/vector"])  # fmt: skip
    pool.shutdown(wait=True)
    table(f"(d) lookup at size, one scope, {dtype} vectors (µs p50 / p99; graphs under 250k are searched on the loop)",
          ["entries", "fill + index build", "exact hit (cache.complete)", "semantic search", "index"], rows)  # fmt: skip


async def memory(quick: bool) -> None:
    n = 5000 if quick else 20_000
    questions = _questions(n, seed=2)
    vectors = hash_vectors(questions, 384)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pool = WorkerPool(max_workers=2)
    rows = []
    for label, semantic in (("exact tier only", False), ("exact + semantic (384-d f32)", True)):
        cfg = msgspec.convert({"semantic": {"enabled": semantic, "exact_below": n * 2}}, CacheConfig)
        emb = HashEmbedder("default", pool=pool, dim=384)
        async with emb, ResponseCache(cfg, embedders={"default": emb}, pool=pool) as cache:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            await _fill(cache, questions, vectors if semantic else None)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            payload = len(_encode(_response(0)))
            stats = cache.stats()
            rows.append([label, f"{(after - before) / n:,.0f} B", f"{payload} B",
                         f"{stats['semantic']['vector_bytes'] / n:,.0f} B" if semantic else "-"])  # fmt: skip
    pool.shutdown(wait=True)
    table(f"(e) memory per entry ({n:,} entries; heap counted by tracemalloc, numpy vectors included)",
          ["tiers", "heap per entry", "of which response JSON", "vector matrix per entry"], rows)  # fmt: skip
    print("  the matrix (float32 rows + sign bits) doubles as it grows (slack included); past 8,192 entries an HNSW"
          " graph replaces it (see (d))")


def quality() -> None:
    spec = importlib.util.spec_from_file_location("cache_quality", ROOT / "tests" / "cache" / "test_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "tests"))
    spec.loader.exec_module(module)
    print("\n(f) semantic-cache quality on examples/cache_pairs at the shipped defaults")
    for kind in ("hash", "local") if _local_available() else ("hash",):
        module._print(kind, asyncio.run(module.run(kind)))


async def main(args: argparse.Namespace) -> None:
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    cpus = pin_apart(not args.no_pin)
    where = f"this process on CPU {sorted(os.sched_getaffinity(0))}, servers on {sorted(cpus)}" if cpus else "not pinned"
    print(f"tidegate response-cache benchmark (upstream: the LLM simulator, not a model; {where})")
    with process(simulator_cmd(sim_port), ready_url=sim_url, cpus=cpus):
        await miss_overhead(sim_url, args.quick)  # first: a loaded model or a big heap slows what follows
        await exact_hits(sim_url, args.quick, cpus)
        await semantic_hits(sim_url, args.quick)
    await lookups(args.entries if not args.quick else min(args.entries, 20_000), args.dtype, args.quick)
    await memory(args.quick)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and entries (smoke run)")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dtype", choices=("f32", "f16", "i8"), default="f32")
    parser.add_argument("--quality", action="store_true", help="also run the pair-set quality report")
    parser.add_argument("--no-pin", action="store_true", help="let the servers share this process's CPU")
    arguments = parser.parse_args()
    asyncio.run(main(arguments))
    if arguments.quality:
        quality()
