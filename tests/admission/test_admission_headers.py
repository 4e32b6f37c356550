"""Response header values: RateLimit-*, Retry-After, OpenAI's x-ratelimit-*."""

from __future__ import annotations

import pytest

from tidegate.admission import error_headers, success_headers
from tidegate.admission.headers import openai_duration
from tidegate.admission.meters import Stats
from tidegate.errors import Overloaded, RateLimited, ShuttingDown

from .admission_support import FakeClock, info, running


async def test_success_headers_track_the_tightest_policy() -> None:
    clock = FakeClock()
    async with running(
        clock=clock,
        limits=[
            {"key": "ip", "requests": "10/minute"},
            {"key": "api_key", "tokens": "1000/minute"},
        ],
    ) as admission:
        first = await admission.admit(info(api_key_name="k", est_tokens=100))
        assert first.headers() == {
            "RateLimit-Limit": "10",
            "RateLimit-Remaining": "9",
            "RateLimit-Reset": "60",
            "RateLimit-Policy": "10;w=60",
        }
        clock.advance(15)
        second = await admission.admit(info(api_key_name="k", est_tokens=700))
        headers = second.headers(openai=True)
        # Tokens are now the scarcer budget (200/1000 left vs 8/10).
        assert headers["RateLimit-Limit"] == "1000"
        assert headers["RateLimit-Remaining"] == "200"
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == "8"
        assert headers["x-ratelimit-reset-requests"] == "45s"  # the oldest hit leaves in 45 s
        assert headers["x-ratelimit-limit-tokens"] == "1000"
        assert headers["x-ratelimit-remaining-tokens"] == "200"
        assert headers["x-ratelimit-reset-tokens"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in second.headers()


async def test_headers_can_be_turned_off() -> None:
    async with running(
        limits=[{"requests": "5/second"}], admission={"headers": False}
    ) as admission:
        assert (await admission.admit(info())).headers() == {}


async def test_refusal_headers() -> None:
    clock = FakeClock()
    async with running(
        clock=clock, limits=[{"key": "api_key", "tokens": "1000/minute"}]
    ) as admission:
        await admission.admit(info(api_key_name="k", est_tokens=900))
        with pytest.raises(RateLimited) as caught:
            await admission.admit(info(api_key_name="k", est_tokens=300))
    headers = error_headers(caught.value, openai=True)
    retry = caught.value.retry_after
    assert headers["Retry-After"] == str(int(-(-retry // 1)))
    assert headers["RateLimit-Limit"] == "1000"
    assert headers["RateLimit-Remaining"] == "100"
    assert headers["x-ratelimit-remaining-tokens"] == "100"
    assert "x-ratelimit-remaining-requests" not in headers


def test_error_headers_for_each_refusal() -> None:
    limited = RateLimited(
        "x", limit=5, remaining=0, reset_at=0.0, retry_after=1.2, rule="r.requests"
    )
    assert error_headers(limited) == {
        "Retry-After": "2",
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "2",
    }
    assert error_headers(limited, openai=True)["x-ratelimit-reset-requests"] == "1.2s"
    assert error_headers(Overloaded("busy", retry_after=0.2)) == {"Retry-After": "1"}
    assert error_headers(ShuttingDown()) == {"Retry-After": "1"}


def test_tightest_policy_is_by_remaining_fraction() -> None:
    stats = [Stats("requests", 100, 50, 30, 60), Stats("tokens", 10_000, 1_000, 10, 60)]
    assert success_headers(stats)["RateLimit-Limit"] == "10000"
    assert success_headers([]) == {}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0171, "17ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (360, "6m0s"),
        (7322.25, "2h2m2.25s"),
        (59.9999, "1m0s"),
    ],
)
def test_openai_duration(seconds: float, text: str) -> None:
    assert openai_duration(seconds) == text
