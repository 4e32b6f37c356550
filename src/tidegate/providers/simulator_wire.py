"""OpenAI wire shapes the simulator answers with: bodies, SSE frames and error envelopes.

Stream frames are spliced from pre-encoded byte templates (one JSON-encoded word between a fixed
head and tail) because a benchmark upstream must cost far less per chunk than the gateway it
measures; whole bodies go through one reused ``msgspec`` encoder.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from .simulator_text import VOCAB_JSON, VOCAB_JSON_SPACED, Reply

__all__ = [
    "DONE",
    "FINGERPRINT",
    "OWNER",
    "StreamFrames",
    "chat_body",
    "chat_frames",
    "completion_body",
    "completion_frames",
    "error_body",
    "malformed_body",
    "malformed_frame",
    "new_id",
]

FINGERPRINT = "tidegate-simulator"
OWNER = "tidegate-simulator"
DONE = b"data: [DONE]\n\n"

_encode = msgspec.json.Encoder().encode


def new_id(prefix: str) -> str:
    return f"{prefix}-sim{os.urandom(9).hex()}"


def error_body(message: str, *, kind: str, code: str | None, param: str | None = None) -> bytes:
    """OpenAI's error envelope, so clients and the gateway parse simulated failures as real ones."""
    return _encode({"error": {"message": message, "type": kind, "param": param, "code": code}})


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_calls_json(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in reply.tool_calls or ()
    ]


def chat_body(reply: Reply, *, model: str, prompt_tokens: int) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls_json(reply)
    return _encode(
        {
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage_of(prompt_tokens, reply.completion_tokens),
        }
    )


def completion_body(reply: Reply, *, model: str, prompt_tokens: int) -> bytes:
    return _encode(
        {
            "id": new_id("cmpl"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "text": reply.text or "",
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage_of(prompt_tokens, reply.completion_tokens),
        }
    )


def malformed_body(model: str) -> bytes:
    """A 200 body that is cut mid-object: what a crashing proxy in front of a model sends."""
    return (
        b'{"id": "' + new_id("chatcmpl").encode() + b'", "model": "' + model.encode() + b'", "choi'
    )


def malformed_frame() -> bytes:
    return b'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"content": "oops\n\n'


class StreamFrames(msgspec.Struct, gc=False):
    """An SSE answer split for pacing: ``lead`` goes out with the first token, ``tokens`` one per
    tick, ``trailer`` (finish, usage, ``[DONE]``) right after the last token."""

    lead: bytes
    tokens: list[bytes]
    trailer: bytes


def _head(object_name: str, chunk_id: str, model: str) -> bytes:
    return (
        b'data: {"id":"' + chunk_id.encode() + b'","object":"' + object_name.encode()
        + b'","created":' + str(int(time.time())).encode() + b',"model":' + _encode(model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":['
    )  # fmt: skip


def _word_frames(reply: Reply, head: bytes, tail: bytes) -> list[bytes]:
    if reply.indices is not None:
        words = reply.indices
        if not words:
            return []
        first = head + VOCAB_JSON[words[0]] + tail
        return [first, *(head + VOCAB_JSON_SPACED[i] + tail for i in words[1:])]
    return [head + _encode(piece) + tail for piece in reply.pieces or ()]


def chat_frames(
    reply: Reply, *, model: str, prompt_tokens: int, include_usage: bool
) -> StreamFrames:
    chunk_id = new_id("chatcmpl")
    head = _head("chat.completion.chunk", chunk_id, model) + b'{"index":0,"delta":'
    usage_null = b',"usage":null' if include_usage else b""
    tail = b',"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"
    if reply.tool_calls:
        lead = head + b'{"role":"assistant","content":null}' + tail
        tokens: list[bytes] = []
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            tokens.append(head + b'{"tool_calls":[' + _encode(opening) + b"]}" + tail)
            args = call.arguments
            for start in range(0, len(args), 8):
                delta = {"index": index, "function": {"arguments": args[start : start + 8]}}
                tokens.append(head + b'{"tool_calls":[' + _encode(delta) + b"]}" + tail)
    else:
        lead = head + b'{"role":"assistant","content":""}' + tail
        content_head = head + b'{"content":'
        tokens = _word_frames(reply, content_head, b"}" + tail)
    finish = _encode(reply.finish_reason)
    trailer = head + b'{},"logprobs":null,"finish_reason":' + finish + b"}]" + usage_null + b"}\n\n"
    if include_usage:
        usage = _encode(usage_of(prompt_tokens, reply.completion_tokens))
        trailer += (
            _head("chat.completion.chunk", chunk_id, model) + b'],"usage":' + usage + b"}\n\n"
        )
    return StreamFrames(lead=lead, tokens=tokens, trailer=trailer + DONE)


def completion_frames(
    reply: Reply, *, model: str, prompt_tokens: int, include_usage: bool
) -> StreamFrames:
    chunk_id = new_id("cmpl")
    head = _head("text_completion", chunk_id, model) + b'{"text":'
    usage_null = b',"usage":null' if include_usage else b""
    tail = b',"index":0,"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"
    tokens = _word_frames(reply, head, tail)
    finish = _encode(reply.finish_reason)
    trailer = head + b'"","index":0,"logprobs":null,"finish_reason":' + finish + b"}]"
    trailer += usage_null + b"}\n\n"
    if include_usage:
        usage = _encode(usage_of(prompt_tokens, reply.completion_tokens))
        trailer += _head("text_completion", chunk_id, model) + b'],"usage":' + usage + b"}\n\n"
    return StreamFrames(lead=b"", tokens=tokens, trailer=trailer + DONE)
