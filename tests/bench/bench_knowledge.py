"""Knowledge-base benchmarks: vector search vs numpy brute force, recall, ingest speed, loop lag.

Run: ``python tests/bench/bench_knowledge.py`` (about 2 minutes on 2 cores; ``--million`` adds a
1M-vector i8 index, several minutes more). Everything is measured in this run, so ratios compare
like with like on whatever machine runs it.

Vectors are synthetic but embedding-like (low intrinsic dimension, clustered, 384-d, unit norm;
top-1 cosine ~0.8, median ~0), because uniform random vectors are far harder for HNSW than any
real embedding set and would understate recall.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tidegate._concurrency import WorkerPool  # noqa: E402
from tidegate.config.knowledge import EmbedderConfig, KnowledgeConfig  # noqa: E402
from tidegate.embeddings import build_embedder  # noqa: E402
from tidegate.embeddings.local import MODELS, missing_packages  # noqa: E402
from tidegate.knowledge import build_knowledge_base  # noqa: E402
from tidegate.knowledge.vectors import VectorIndex  # noqa: E402

DIM = 384
CORPUS = ROOT / "examples" / "kb" / "after_sales"


class Data:
    """Clustered low-rank vectors: z ~ cluster + noise in 48-d, mapped to 384-d, plus noise."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.w = self.rng.standard_normal((48, DIM)).astype(np.float32)
        self.centers = self.rng.standard_normal((2000, 48)).astype(np.float32)

    def sample(self, n: int) -> np.ndarray:
        out = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            z = self.centers[self.rng.integers(0, len(self.centers), m)]
            z = z + 0.6 * self.rng.standard_normal((m, 48)).astype(np.float32)
            v = z @ self.w + 0.32 * self.rng.standard_normal((m, DIM)).astype(np.float32)
            out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.3f} ms"


def brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def time_queries(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> list[float]:
    fn(queries[0])  # warm caches
    out = []
    for query in queries:
        started = time.perf_counter()
        fn(query)
        out.append(time.perf_counter() - started)
    return out


def recall_at_10(index: VectorIndex, matrix: np.ndarray, queries: np.ndarray) -> float:
    found = 0
    for query in queries:
        truth = set((brute_force(matrix, query, 10) + 1).tolist())
        found += len(truth & {k for k, _ in index._hnsw(query, 10)})
    return found / (10 * len(queries))


def search_row(label: str, index: VectorIndex, matrix: np.ndarray, queries: np.ndarray, n_brute: int) -> str:
    hnsw = time_queries(lambda q: index._hnsw(q, 10), queries)
    brute = time_queries(lambda q: brute_force(matrix, q, 10), queries[:n_brute])
    recall = recall_at_10(index, matrix, queries[: min(200, len(queries))])
    ef = index.index.expansion_search
    return (f"{label:>14} | HNSW p50 {ms(statistics.median(hnsw))} p99 {ms(pct(hnsw, 0.99))} | "
          f"numpy p50 {ms(statistics.median(brute))} p99 {ms(pct(brute, 0.99))} | "
          f"numpy/HNSW {statistics.median(brute) / statistics.median(hnsw):6.1f}x | "
            f"recall@10 {recall:.3f} (ef={ef})")  # fmt: skip


def vector_benchmarks(million: bool, n_queries: int) -> VectorIndex:
    data = Data()
    queries = data.sample(n_queries)
    matrix = data.sample(100_000)
    index = VectorIndex(ndim=DIM, dtype="f32", exact_below=0, expansion_add=128, expansion_search=64)
    print("\n## Exact numpy vs HNSW by size (f32, top-10, single query) — where is the crossover?")
    added = 0
    built = 0.0
    crossover = None
    row_10k = ""
    for size in (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000):
        started = time.perf_counter()
        index.add(np.arange(added + 1, size + 1, dtype=np.uint64), matrix[added:size])
        built += time.perf_counter() - started
        added = size
        hnsw = statistics.median(time_queries(lambda q: index._hnsw(q, 10), queries[:200]))
        head = matrix[:size]
        brute = statistics.median(time_queries(lambda q, m=head: brute_force(m, q, 10), queries[:200]))
        if crossover is None and brute > hnsw:
            crossover = size
        print(f"{size:>8} vectors | numpy {ms(brute)} | HNSW {ms(hnsw)} | numpy/HNSW {brute / hnsw:5.2f}x")
        if size == 10_000:  # the 10k row, measured on the index as it is at 10k
            row_10k = search_row("10k f32", index, matrix[:10_000], queries, len(queries))
    print(f"crossover: numpy is faster below ~{crossover or '>100k'} vectors "
          f"(KnowledgeConfig.exact_below defaults to 10,000)")  # fmt: skip
    print(f"HNSW build f32: {added / built:,.0f} vectors/s")

    print("\n## Search latency vs numpy brute force on the same data")
    print(row_10k)
    print(search_row("100k f32", index, matrix, queries, len(queries)))
    index.index.expansion_search = 128  # type: ignore[misc]
    print(search_row("100k f32", index, matrix, queries, len(queries)))
    index.index.expansion_search = 64  # type: ignore[misc]
    if million:
        print("building 1M i8 (this takes a while)...", flush=True)
        big_matrix = np.concatenate([matrix, data.sample(900_000)])
        big = VectorIndex(ndim=DIM, dtype="i8", exact_below=0, expansion_add=64, expansion_search=128)
        started = time.perf_counter()
        big.add(np.arange(1, len(big_matrix) + 1, dtype=np.uint64), big_matrix)
        print(f"HNSW build i8: {len(big_matrix) / (time.perf_counter() - started):,.0f} vectors/s")
        print(search_row("1M i8", big, big_matrix, queries, 30))
        big.index.expansion_search = 256  # type: ignore[misc]
        print(search_row("1M i8", big, big_matrix, queries, 30))
    return index


async def ingest_benchmarks() -> None:
    print("\n## Ingest throughput per embedder (after_sales corpus, chunk 800/100, no save)")
    pool = WorkerPool(2, name="bench")
    configs = {"hash": EmbedderConfig(kind="hash")}
    for model in MODELS:
        if not missing_packages(MODELS[model]):
            configs[f"local {model}"] = EmbedderConfig(kind="local", model=model)
    try:
        from tidegate.providers.simulator import Simulator, SimulatorConfig

        simulator: Simulator | None = Simulator(SimulatorConfig(ttft=0.0, tokens_per_second=0.0))
        await simulator.start()
        configs["openai (simulator)"] = EmbedderConfig(kind="openai", url=simulator.url, dim=384)
    except Exception as exc:  # the simulator is optional for this benchmark
        print(f"(simulator unavailable: {exc})")
        simulator = None
    try:
        for label, cfg in configs.items():
            async with build_embedder("bench", cfg, pool) as emb:
                with tempfile.TemporaryDirectory() as folder:
                    kb_cfg = KnowledgeConfig(index=folder, source=str(CORPUS))
                    async with build_knowledge_base("bench", kb_cfg, emb, pool) as kb:
                        report = await kb.ingest(save=False)
                        lat = []
                        for i in range(60):
                            started = time.perf_counter()
                            await kb.search(f"question {i} about returns and refunds", score_threshold=-1.0)
                            lat.append(time.perf_counter() - started)
                    print(f"{label:>34}: {report.chunks} chunks in {report.seconds:5.2f}s = "
                          f"{report.chunks_per_second:8.1f} chunks/s | kb.search p50 {ms(statistics.median(lat))}")  # fmt: skip
    finally:
        if simulator is not None:
            await simulator.stop()
        pool.shutdown()


async def lag_while(label: str, work: Callable[[], Awaitable[object]]) -> None:
    """Lateness of a 1 ms ticker while ``work`` runs: what every other request on the loop feels."""
    late: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            started = loop.time()
            await asyncio.sleep(0.001)
            late.append(loop.time() - started - 0.001)

    ticker = asyncio.create_task(probe())
    started = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - started
    done.set()
    await ticker
    print(f"{label:>48}: {elapsed:6.2f}s of work | loop lag p50 {ms(statistics.median(late))} "
          f"p99 {ms(pct(late, 0.99))} max {ms(max(late))}")  # fmt: skip


async def loop_lag_benchmarks(index: VectorIndex) -> None:
    print("\n## Event-loop lag while big work runs (target: < 5 ms)")
    pool = WorkerPool(2, name="bench")
    data = Data(seed=5)
    queries = data.sample(2000)
    try:
        await lag_while("idle (the noise floor of this machine)", lambda: asyncio.sleep(2.0))

        # 32 clients searching back to back: a server under load, not one 2000-task burst
        # (scheduling 2000 tasks in one loop turn would itself stall the loop for ~30 ms).
        async def client(part: np.ndarray) -> None:
            for query in part:
                await pool.run(index.search, query, 10)

        async def searches() -> None:
            await asyncio.gather(*(client(queries[i::32]) for i in range(32)))

        await lag_while("2000 searches on 100k vectors (32 clients)", searches)

        extra = data.sample(5_000)
        keys = np.arange(10_000_001, 10_005_001, dtype=np.uint64)
        await lag_while("adding 5k vectors to the 100k index", lambda: pool.run(index.add, keys, extra))

        cfg = EmbedderConfig(kind="local") if not missing_packages(MODELS["all-MiniLM-L6-v2"]) else EmbedderConfig(kind="hash")
        async with build_embedder("bench", cfg, pool) as emb:
            with tempfile.TemporaryDirectory() as folder:
                kb_cfg = KnowledgeConfig(index=folder, source=str(CORPUS))
                async with build_knowledge_base("bench", kb_cfg, emb, pool) as kb:
                    await lag_while(f"ingest of the corpus ({emb.model_id}) + save", kb.ingest)

                    async def kb_client(n: int) -> None:
                        for i in range(20):
                            await kb.search(f"where is parcel {n}-{i}")

                    async def kb_searches() -> None:
                        await asyncio.gather(*(kb_client(n) for n in range(16)))

                    await lag_while("320 kb.search, embed + search (16 clients)", kb_searches)
    finally:
        pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", action="store_true", help="also build and search a 1M i8 index")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    started = time.perf_counter()
    index = vector_benchmarks(args.million, args.queries)
    asyncio.run(ingest_benchmarks())
    asyncio.run(loop_lag_benchmarks(index))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
