"""Token estimates made before a call, for reservations that are reconciled after it.

No tokenizer: admission runs on every request and must cost microseconds, and the reservation is
corrected from the upstream's ``usage`` anyway. ASCII text averages about four characters per
token in BPE vocabularies; CJK and most other non-ASCII scripts are closer to one token per
character, so those count one each (a plain ``len / 4`` would under-reserve Chinese prompts
four-fold and let a burst of them overshoot the budget). The completion side is the request's
``max_tokens`` (or ``max_completion_tokens``), which bounds what the upstream may produce.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["estimate_chat_tokens", "estimate_text_tokens", "estimate_value_tokens"]

_PER_MESSAGE = 4  # role and separators, as OpenAI counts them


def estimate_text_tokens(text: str) -> int:
    if text.isascii():
        return (len(text) + 3) // 4
    utf8 = len(text.encode("utf-8", "surrogatepass"))
    # Count non-ASCII characters by their UTF-8 surplus (2-4 bytes each, mostly 3 for CJK).
    extra = (utf8 - len(text) + 1) // 2
    ascii_chars = max(0, len(text) - extra)
    return (ascii_chars + 3) // 4 + extra


def estimate_value_tokens(value: object) -> int:
    """Tokens of every string inside a JSON-like value (Dify ``inputs``, tool arguments…)."""
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if isinstance(value, Mapping):
        return sum(estimate_value_tokens(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(estimate_value_tokens(item) for item in value)
    return 0


def estimate_chat_tokens(body: Mapping[str, object], *, default_max_tokens: int = 512) -> int:
    """Prompt estimate plus the completion budget of an OpenAI chat request body."""
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            total += _PER_MESSAGE
            if isinstance(message, Mapping):
                content = message.get("content")
                if isinstance(content, str):
                    total += estimate_text_tokens(content)
                elif content is not None:
                    total += estimate_value_tokens(content)
                if "tool_calls" in message:
                    total += estimate_value_tokens(message["tool_calls"])
    prompt = body.get("prompt")  # legacy completions / embeddings "input"
    if prompt is not None:
        total += estimate_value_tokens(prompt)
    text_input = body.get("input")
    if text_input is not None:
        total += estimate_value_tokens(text_input)
    if "tools" in body:
        total += estimate_value_tokens(body["tools"])
    completion = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(completion, int) and not isinstance(completion, bool) and completion >= 0:
        total += completion
    elif "input" not in body:  # embeddings produce no completion
        total += default_max_tokens
    return total
