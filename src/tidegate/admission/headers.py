"""Response headers that tell clients where they stand: ``Retry-After``, the IETF ``RateLimit-*``
fields (draft-ietf-httpapi-ratelimit-headers, the widely deployed ``-Limit/-Remaining/-Reset``
form plus ``RateLimit-Policy``) and OpenAI's ``x-ratelimit-*`` so OpenAI SDKs back off as they
would against OpenAI itself.

The IETF fields describe one policy, so we pick the one closest to running out (lowest
remaining fraction); OpenAI's describe requests and tokens separately. Values are strings, ready
for any framework; ``Retry-After`` is whole seconds, rounded up (a client retrying early would
only be refused again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import RateLimited, TidegateError
from .meters import Stats

__all__ = ["error_headers", "openai_duration", "retry_after_value", "success_headers"]


def retry_after_value(seconds: float) -> str:
    return str(max(1, math.ceil(seconds - 1e-9)))


def openai_duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``2h0m0s``."""
    seconds = round(seconds, 3)
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes >= 1:
        return f"{int(minutes)}m{text}"
    return text


def _tightest(stats: Sequence[Stats]) -> Stats | None:
    best: Stats | None = None
    for item in stats:
        if best is None or item.remaining * best.limit < best.remaining * item.limit:
            best = item
    return best


def success_headers(stats: Sequence[Stats], *, openai: bool = False) -> dict[str, str]:
    """Headers for an admitted request from the stats of the rates it was counted against."""
    headers: dict[str, str] = {}
    policy = _tightest(stats)
    if policy is None:
        return headers
    headers["RateLimit-Limit"] = str(policy.limit)
    headers["RateLimit-Remaining"] = str(policy.remaining)
    headers["RateLimit-Reset"] = str(math.ceil(policy.reset_in))
    headers["RateLimit-Policy"] = f"{policy.limit};w={math.ceil(policy.window)}"
    if openai:
        for kind in ("requests", "tokens"):
            item = _tightest([s for s in stats if s.kind == kind])
            if item is not None:
                headers[f"x-ratelimit-limit-{kind}"] = str(item.limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(item.remaining)
                headers[f"x-ratelimit-reset-{kind}"] = openai_duration(item.reset_in)
    return headers


def error_headers(exc: TidegateError, *, openai: bool = False) -> dict[str, str]:
    """Headers for a refusal: ``RateLimited`` (429) or ``Overloaded`` / any 503 with a hint."""
    retry_after = getattr(exc, "retry_after", None)
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after_value(retry_after)
    if isinstance(exc, RateLimited):
        reset = math.ceil(max(retry_after or 0.0, 0.0))
        headers["RateLimit-Limit"] = str(exc.limit)
        headers["RateLimit-Remaining"] = str(exc.remaining)
        headers["RateLimit-Reset"] = str(max(1, reset))
        if openai:
            kind = "tokens" if (exc.rule or "").endswith(".tokens") else "requests"
            headers[f"x-ratelimit-limit-{kind}"] = str(exc.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(exc.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = openai_duration(retry_after or 0.0)
    return headers
