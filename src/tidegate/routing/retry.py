"""When to try again and how long to wait first.

Backoff is exponential with *full* jitter (a uniform draw between 0 and the exponential cap): of
the usual variants it spreads a synchronized burst of retries the most, so a deployment that just
recovered is not hit by everyone again at the same instant. A ``Retry-After`` from the upstream is
a floor on the wait for that deployment, never shortened by jitter; when it would outlast the
overall deadline we stop waiting and let fallbacks answer instead.
"""

from __future__ import annotations

import random
from typing import Literal

from ..errors import UpstreamError, UpstreamTimeout

__all__ = ["FailureKind", "RetryPolicy", "classify"]

FailureKind = Literal["retry", "fallback", "rate_limited", "fatal"]
"""``retry``: the deployment failed (counts against its breaker), try again; ``fallback``: it
failed with a status the user did not list for retries, so skip to the fallbacks; ``rate_limited``:
it asked us to back off (cooldown, no breaker penalty); ``fatal``: the request itself is at fault
(a 4xx), so every other deployment would refuse it too — stop now."""


class RetryPolicy:
    __slots__ = (
        "_rng",
        "attempt_timeout",
        "attempts",
        "backoff_max",
        "backoff_min",
        "deadline",
        "max_retry_after",
        "on_connection_error",
        "on_status",
    )

    def __init__(
        self,
        *,
        attempts: int = 3,
        on_status: frozenset[int] | set[int] | list[int] = frozenset(
            {408, 429, 500, 502, 503, 504}
        ),
        on_connection_error: bool = True,
        backoff_min: float = 0.1,
        backoff_max: float = 2.0,
        attempt_timeout: float | None = None,
        deadline: float = 60.0,
        max_retry_after: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.attempts = max(1, attempts)
        self.on_status = frozenset(on_status)
        self.on_connection_error = on_connection_error
        self.backoff_min = max(0.0, backoff_min)
        self.backoff_max = max(self.backoff_min, backoff_max)
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        self.max_retry_after = max_retry_after
        self._rng = rng or random.Random()

    def classify(self, error: BaseException) -> FailureKind:
        return classify(error, self.on_status, on_connection_error=self.on_connection_error)

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        Full jitter over ``[0, min(max, min * 2**(retry-1))]``, floored by ``backoff_min`` so a
        retry never fires instantly into the same failure, and by ``retry_after`` when given.
        """
        cap = min(self.backoff_max, self.backoff_min * (2.0 ** max(0, retry - 1)))
        wait = self.backoff_min + self._rng.random() * max(0.0, cap - self.backoff_min)
        if retry_after is not None and retry_after > wait:
            wait = retry_after
        return wait


def classify(
    error: BaseException, on_status: frozenset[int], *, on_connection_error: bool = True
) -> FailureKind:
    """Map an upstream failure to what the router should do about it."""
    if isinstance(error, UpstreamTimeout | TimeoutError):
        return "retry" if on_connection_error else "fatal"
    if isinstance(error, UpstreamError):
        status = error.upstream_status
        if status is None:
            return "retry" if on_connection_error else "fatal"
        if status == 429:
            return "rate_limited" if 429 in on_status else "fatal"
        if status in on_status:
            return "retry"
        return "fallback" if status >= 500 else "fatal"
    return "fatal"
