"""The last-resort answer: a polite, well-formed completion when every upstream is down.

It has the exact shape of a real answer (so clients and SDKs parse it) and is marked only in the
route decision, headers and metrics — a user sees an apology instead of a 5xx page.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["degraded_chunks", "degraded_response", "response_chunks"]

MODEL_NAME = "tidegate-degraded"


def degraded_response(text: str, *, model: str | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-degraded-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or MODEL_NAME,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def degraded_chunks(text: str, *, model: str | None = None) -> Iterator[dict[str, Any]]:
    """The same answer as a stream: role, content, finish."""
    base = {
        "id": f"chatcmpl-degraded-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model or MODEL_NAME,
    }
    yield {
        **base,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    }
    yield {**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def response_chunks(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Replay a finished completion as chunks (a cascade answered a stream request non-streamed)."""
    base = {
        "id": response.get("id", f"chatcmpl-{uuid.uuid4().hex[:16]}"),
        "object": "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    for choice in response.get("choices") or []:
        message = dict(choice.get("message") or {})
        index = choice.get("index", 0)
        delta: dict[str, Any] = {"role": message.pop("role", "assistant")}
        delta.update({key: value for key, value in message.items() if value is not None})
        yield {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        yield {
            **base,
            "choices": [
                {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}
            ],
        }
    if response.get("usage"):
        yield {**base, "choices": [], "usage": response["usage"]}
