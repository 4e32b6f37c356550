"""On-disk layout of a knowledge base and its crash-safe save.

A base is a folder::

    manifest.json              which generation is current, and what built it
    index-000007.usearch       the USearch index of generation 7
    store-000007.msgpack       documents, chunks and source-file hashes of generation 7

A save writes generation N+1 next to N (temp file, fsync, rename), then replaces
``manifest.json`` atomically (temp, fsync, ``os.replace``, fsync of the folder) and only then
deletes generation N. A process killed at any point leaves a manifest that names complete files:
the old generation until the rename, the new one after. Files are never rewritten in place, so a
reader that memory-mapped generation N keeps working while N+1 is written.

Both files carry a format ``version`` and decode through a tagged union, so files written by older
releases keep loading when the format grows.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ..errors import ConfigError

__all__ = [
    "ChunkRecord",
    "DocRecord",
    "FileRecord",
    "Manifest",
    "StoreV1",
    "decode_store",
    "encode_store",
    "read_manifest",
    "write_generation",
]

MANIFEST = "manifest.json"
_GENERATION = re.compile(r"^(index|store)-(\d{6,})\.(usearch|msgpack)(\.tmp)?$")


class ChunkRecord(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One indexed chunk; ``key`` is its USearch key."""

    key: int
    doc_id: str
    position: int
    content: str
    section: str = ""


class DocRecord(msgspec.Struct, frozen=True, array_like=True):
    doc_id: str
    title: str
    content_hash: str
    keys: list[int]
    metadata: dict[str, Any] = {}
    source: str = ""


class FileRecord(msgspec.Struct, frozen=True, array_like=True):
    """What an ingest last saw of a source file: unchanged hash → the file is skipped."""

    content_hash: str
    doc_ids: list[str]


class StoreV1(msgspec.Struct, tag_field="version", tag=1):
    model_id: str
    dim: int
    next_key: int
    docs: list[DocRecord]
    chunks: list[ChunkRecord]
    files: dict[str, FileRecord] = {}


class Manifest(msgspec.Struct, tag_field="version", tag=1):
    generation: int
    index_file: str
    store_file: str
    model_id: str
    dim: int
    dtype: str
    metric: str
    count: int
    saved_at: float


_store_encoder = msgspec.msgpack.Encoder()
_store_decoder = msgspec.msgpack.Decoder(StoreV1)
_manifest_decoder = msgspec.json.Decoder(Manifest)


def encode_store(store: StoreV1) -> bytes:
    return _store_encoder.encode(store)


def decode_store(data: bytes, where: str) -> StoreV1:
    try:
        return _store_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"Expected a tidegate documents store, got {exc} - at `{where}`") from exc


def read_manifest(folder: Path) -> Manifest | None:
    """The current manifest, or ``None`` for a folder that was never saved."""
    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return _manifest_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"Expected a tidegate index manifest, got {exc} - at `{path}`") from exc


def write_generation(
    folder: Path,
    previous: Manifest | None,
    save_index: Callable[[str], None],
    store_bytes: bytes,
    make_manifest: Callable[[int, str, str], Manifest],
    *,
    step: Callable[[str], None] | None = None,
) -> Manifest:
    """Write the next generation and switch the manifest to it. Blocking: run it in the pool.

    ``save_index(path)`` writes the vector index to ``path``; ``step`` is told each durable step
    (tests use it to see where a crash would land).
    """
    folder.mkdir(parents=True, exist_ok=True)
    generation = max([previous.generation if previous else 0, *_generations_on_disk(folder)]) + 1
    index_name = f"index-{generation:06d}.usearch"
    store_name = f"store-{generation:06d}.msgpack"
    notify = step or (lambda _: None)

    temp = folder / (index_name + ".tmp")
    save_index(str(temp))
    _fsync_file(temp)
    os.replace(temp, folder / index_name)
    notify("index")

    temp = folder / (store_name + ".tmp")
    _write_durable(temp, store_bytes)
    os.replace(temp, folder / store_name)
    notify("store")

    manifest = make_manifest(generation, index_name, store_name)
    temp = folder / (MANIFEST + ".tmp")
    _write_durable(temp, msgspec.json.encode(manifest))
    os.replace(temp, folder / MANIFEST)
    _fsync_dir(folder)
    notify("manifest")

    _remove_other_generations(folder, keep=generation)
    notify("cleanup")
    return manifest


def new_manifest(
    generation: int, index_file: str, store_file: str, *, model_id: str, dim: int, dtype: str,
    metric: str, count: int,
) -> Manifest:  # fmt: skip
    return Manifest(
        generation=generation, index_file=index_file, store_file=store_file, model_id=model_id,
        dim=dim, dtype=dtype, metric=metric, count=count, saved_at=time.time(),
    )  # fmt: skip


def _generations_on_disk(folder: Path) -> list[int]:
    found = []
    for entry in folder.iterdir():
        match = _GENERATION.match(entry.name)
        if match:
            found.append(int(match.group(2)))
    return found


def _remove_other_generations(folder: Path, *, keep: int) -> None:
    for entry in folder.iterdir():
        match = _GENERATION.match(entry.name)
        if match and (int(match.group(2)) != keep or match.group(4)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    with contextlib.suppress(FileNotFoundError):
        (folder / (MANIFEST + ".tmp")).unlink()


def _write_durable(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the renames themselves durable; not possible (nor needed) on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
