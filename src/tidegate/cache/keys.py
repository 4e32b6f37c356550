"""Cache keys: what makes two requests the same request, and in which scope a hit is allowed.

A *scope* is everything that changes the answer besides the conversation: the tenant, the route
(model, tier or workflow + version), the system prompt, the tools, and every request parameter
except the few known not to change output (``stream``, ``user``, ``metadata``…). Parameters are
excluded by an explicit list, never included by one, so an unknown new parameter (a provider's
``reasoning_effort``) splits the scope instead of silently sharing answers.

Within a scope the *exact* key covers the whole conversation, and the *partition* key covers the
conversation before the last user message: semantic and normalized matches only happen inside a
partition, so a follow-up ("what about the second one?") never matches the same words asked
after a different history.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = ["IGNORED_PARAMS", "CacheKey", "build_key"]

IGNORED_PARAMS = frozenset(
    {
        "messages", "model", "stream", "stream_options", "user", "metadata", "store",
        "service_tier", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
    }
)  # fmt: skip
"""Request fields that never change the answer; everything else is part of the scope."""

_FLOAT_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_SYSTEM_ROLES = frozenset({"system", "developer"})
_encode = msgspec.json.Encoder(order="sorted").encode


class CacheKey(msgspec.Struct, frozen=True, gc=False):
    """Digests of one request. ``question`` is the last user message's text when it has one."""

    tenant: str | None
    route: str
    scope: bytes
    exact: bytes
    partition: bytes
    question: str | None
    temperature: float | None


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    return h.digest()


def build_key(body: dict[str, Any], *, tenant: str | None, route: str) -> CacheKey | None:
    """The key of an OpenAI chat request, or None when it cannot be cached at all."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    system: list[Any] = []
    turns: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        (system if message.get("role") in _SYSTEM_ROLES else turns).append(message)
    params = {k: v for k, v in body.items() if k not in IGNORED_PARAMS}
    for name in _FLOAT_PARAMS:
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            params[name] = float(value)
    temperature = params.get("temperature")
    if not isinstance(temperature, float):
        temperature = None
    try:
        scope = _digest(_encode([tenant, route, system, params]))
        exact = _digest(scope, _encode(turns))
    except (TypeError, msgspec.EncodeError):
        return None
    question = _question(turns[-1]) if turns else None
    if question is not None:
        # The last message's other fields (``name``…) stay in the partition: only its text varies.
        last = {k: v for k, v in turns[-1].items() if k != "content"}
        context: list[Any] = [*turns[:-1], last]
    else:
        context = turns
    partition = _digest(scope, b"partition", _encode(context))
    return CacheKey(tenant, route, scope, exact, partition, question, temperature)


def _question(message: dict[str, Any]) -> str | None:
    """Text of a user message; None for other roles and for images, audio or files."""
    if message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content if content.strip() else None
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            texts.append(str(part.get("text", "")))
        text = "\n".join(texts)
        return text if text.strip() else None
    return None
