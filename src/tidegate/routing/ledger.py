"""Per-request bookkeeping of the router: the plan, the ledger of calls, the winning call.

Kept apart from the router's logic so the stream path and the non-streamed path share the exact
same records (and tests can read them) without importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from ..errors import UpstreamError, UpstreamTimeout
from .deployment import Deployment
from .scorer import Score
from .tiers import Target

__all__ = [
    "Exhausted",
    "Ledger",
    "Plan",
    "Win",
    "as_upstream_error",
    "estimate_tokens",
    "outcome_label",
]

T = TypeVar("T")


class Plan:
    """Where one request goes first, and why."""

    __slots__ = ("body", "override", "score", "target", "tokens")

    def __init__(
        self,
        target: Target,
        body: dict[str, Any],
        score: Score | None,
        override: str | None,
        tokens: int,
    ) -> None:
        self.target = target
        self.body = body
        self.score = score
        self.override = override
        self.tokens = tokens


class Ledger:
    """What happened along the way: calls made, their outcomes, money spent."""

    __slots__ = ("attempts", "cost", "escalated", "trail")

    def __init__(self) -> None:
        self.attempts = 0
        self.trail: list[str] = []
        self.cost = 0.0
        self.escalated: str | None = None


class Win(Generic[T]):
    """A successful call; it holds its deployment's in-flight slot until :meth:`settle`."""

    __slots__ = ("deployment", "result", "settled", "started", "target")

    def __init__(self, target: Target, deployment: Deployment, result: T, started: float) -> None:
        self.target = target
        self.deployment = deployment
        self.result = result
        self.started = started
        self.settled = False

    def settle(self, latency: float | None = None) -> None:
        """Free the slot once, learning ``latency`` (default: since the call started)."""
        if self.settled:
            return
        self.settled = True
        if latency is None:
            latency = time.perf_counter() - self.started
        self.deployment.end(latency, ok=True)


class Exhausted(Exception):
    """Internal: every target of a chain failed or was unavailable (``last`` is the last error)."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__("no deployment could answer")
        self.last = last


def as_upstream_error(exc: BaseException, name: str, timeout: float) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(
            f"upstream {name!r} did not answer within {timeout:.3g}s", upstream=name
        )
    return UpstreamError(f"upstream {name!r} connection failed: {exc}", upstream=name)


def outcome_label(error: UpstreamError) -> str:
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    return str(error.upstream_status) if error.upstream_status is not None else "error"


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Rough prompt + completion tokens (4 characters a token) for tpm admission."""
    chars = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                chars += len(content)
    budget = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return chars // 4 + (budget if isinstance(budget, int) else 0)
