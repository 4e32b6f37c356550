from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.errors import UpstreamError, UpstreamTimeout
from tidegate.routing.retry import RetryPolicy


def error(status: int | None, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError("boom", upstream="x", upstream_status=status, retry_after=retry_after)


def test_classification() -> None:
    policy = RetryPolicy(on_status=[429, 500, 503])
    assert policy.classify(error(500)) == "retry"
    assert policy.classify(error(503)) == "retry"
    assert policy.classify(error(502)) == "fallback"  # deployment's fault, not listed for retries
    assert policy.classify(error(429)) == "rate_limited"
    assert policy.classify(error(400)) == "fatal"
    assert policy.classify(error(404)) == "fatal"
    assert policy.classify(error(None)) == "retry"  # connection refused / reset
    assert policy.classify(UpstreamTimeout("slow", upstream="x")) == "retry"
    assert policy.classify(ValueError("not ours")) == "fatal"


def test_connection_errors_can_be_excluded() -> None:
    policy = RetryPolicy(on_connection_error=False)
    assert policy.classify(error(None)) == "fatal"
    assert policy.classify(UpstreamTimeout("slow")) == "fatal"


def test_429_not_listed_is_returned_to_the_client() -> None:
    assert RetryPolicy(on_status=[500]).classify(error(429)) == "fatal"


def test_backoff_grows_then_caps() -> None:
    policy = RetryPolicy(backoff_min=0.1, backoff_max=1.0, rng=random.Random(0))
    caps = [max(policy.backoff(retry) for _ in range(400)) for retry in range(1, 7)]
    assert caps[0] <= 0.1 + 1e-9
    assert 0.15 < caps[1] <= 0.2
    assert 0.3 < caps[2] <= 0.4
    assert all(0.9 < cap <= 1.0 for cap in caps[4:])


@settings(max_examples=300, deadline=None)
@given(
    low=st.floats(0.0, 5.0),
    span=st.floats(0.0, 10.0),
    retry=st.integers(1, 60),
    retry_after=st.none() | st.floats(0.0, 100.0),
    seed=st.integers(0, 2**32),
)
def test_backoff_bounds(
    low: float, span: float, retry: int, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(backoff_min=low, backoff_max=low + span, rng=random.Random(seed))
    wait = policy.backoff(retry, retry_after)
    if retry_after is not None:
        assert wait >= retry_after  # a Retry-After is a floor, never shortened by jitter
        assert wait <= max(retry_after, low + span)
    else:
        assert low <= wait <= low + span + 1e-9
