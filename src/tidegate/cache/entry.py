"""A cached answer and the two shapes it is served in: a ``chat.completion`` or a chunk stream.

An entry keeps the bytes it arrived as (encoded once, so it is immutable and its size is known)
and converts on the way out: a blocking request can be answered from a recorded stream and a
``stream: true`` request from a blocking answer, as long as the answer is plain text or tool
calls (logprobs do not survive the conversion, so such entries serve their own shape only).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

__all__ = [
    "STORABLE_FINISH",
    "Entry",
    "chunks_to_completion",
    "completion_to_chunks",
    "stream_is_complete",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

STORABLE_FINISH = frozenset({"stop", "length", "tool_calls", "function_call"})
"""Finish reasons of answers worth replaying; ``content_filter`` and unknown ones are not."""


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One stored answer. ``created``/``expires`` are on the cache's clock."""

    kind: Literal["completion", "chunks"]
    payload: bytes
    created: float
    expires: float
    curated: bool = False

    @property
    def size(self) -> int:
        return len(self.payload) + 96  # payload plus the struct and its slots

    @classmethod
    def from_completion(cls, response: dict[str, Any], *, created: float, expires: float) -> Entry:
        return cls("completion", _encode(response), created, expires)

    @classmethod
    def from_chunks(cls, chunks: list[dict[str, Any]], *, created: float, expires: float) -> Entry:
        return cls("chunks", _encode(chunks), created, expires)

    def with_expiry(self, expires: float) -> Entry:
        return Entry(self.kind, self.payload, self.created, expires, self.curated)

    def completion(self) -> dict[str, Any] | None:
        """A fresh ``chat.completion`` dict (the caller may mutate it), or None if unconvertible."""
        data = _decode(self.payload)
        if self.kind == "completion":
            return data  # type: ignore[no-any-return]
        return chunks_to_completion(data)

    def chunks(self, *, include_usage: bool) -> list[dict[str, Any]] | None:
        """Chunks to replay, or None if this answer cannot be streamed faithfully."""
        data = _decode(self.payload)
        chunks = data if self.kind == "chunks" else completion_to_chunks(data)
        if chunks is None:
            return None
        if include_usage:
            return chunks
        out = []
        for chunk in chunks:
            if not chunk.get("choices") and chunk.get("usage"):
                continue
            if "usage" in chunk:
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            out.append(chunk)
        return out


def stream_is_complete(chunks: Iterable[dict[str, Any]]) -> bool:
    """Every choice that appeared ended with a storable finish reason."""
    finished: dict[int, Any] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            reason = choice.get("finish_reason")
            if reason is not None or index not in finished:
                finished[index] = reason
    return bool(finished) and all(reason in STORABLE_FINISH for reason in finished.values())


def completion_to_chunks(response: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The stream an OpenAI server would have sent for ``response`` (one content chunk each)."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    head = {
        "id": response.get("id", "chatcmpl-cached"),
        "object": "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model"),
    }
    if response.get("system_fingerprint") is not None:
        head["system_fingerprint"] = response["system_fingerprint"]
    out: list[dict[str, Any]] = []
    tails: list[dict[str, Any]] = []
    for choice in choices:
        message = choice.get("message")
        if not isinstance(message, dict) or choice.get("logprobs"):
            return None
        index = choice.get("index", 0)
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": ""}
        out.append({**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        body: dict[str, Any] = {}
        if message.get("content"):
            body["content"] = message["content"]
        if message.get("refusal"):
            body["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            body["tool_calls"] = [
                {**call, "index": position} for position, call in enumerate(message["tool_calls"])
            ]
        if body:
            out.append({**head, "choices": [{"index": index, "delta": body, "finish_reason": None}]})
        tails.append(
            {**head, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]}
        )
    out.extend(tails)
    if response.get("usage"):
        out.append({**head, "choices": [], "usage": response["usage"]})
    return out


def chunks_to_completion(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Fold a recorded stream back into the ``chat.completion`` it stands for."""
    if not chunks:
        return None
    first = chunks[0]
    messages: dict[int, dict[str, Any]] = {}
    finish: dict[int, Any] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("logprobs"):
                return None
            index = choice.get("index", 0)
            message = messages.setdefault(index, {"role": "assistant", "content": None})
            delta = choice.get("delta") or {}
            if delta.get("role"):
                message["role"] = delta["role"]
            for field in ("content", "refusal"):
                if delta.get(field):
                    message[field] = (message.get(field) or "") + delta[field]
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(message.setdefault("tool_calls", []), call)
            if choice.get("finish_reason") is not None:
                finish[index] = choice["finish_reason"]
    if not messages:
        return None
    response: dict[str, Any] = {
        "id": first.get("id", "chatcmpl-cached"),
        "object": "chat.completion",
        "created": first.get("created", int(time.time())),
        "model": first.get("model"),
        "choices": [
            {"index": index, "message": messages[index], "logprobs": None, "finish_reason": finish.get(index)}
            for index in sorted(messages)
        ],
    }
    if first.get("system_fingerprint") is not None:
        response["system_fingerprint"] = first["system_fingerprint"]
    if usage is not None:
        response["usage"] = usage
    return response


def _merge_tool_call(calls: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    position = delta.get("index", len(calls))
    while len(calls) <= position:
        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    call = calls[position]
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]
