"""Tiered routing through every host: the tier, model and cost headers reach the client.

Config (``tidegate.yaml``): tier ``fast`` (deployment ``small``) takes ``model: auto`` requests
scoring below 0.4, ``deep`` (``large``) the rest; ``flaky``'s only deployment listens nowhere and
falls back to ``fast``. Prices per 1M tokens: small 0.5 in / 1.5 out, large 5 / 15.
"""

from __future__ import annotations

from typing import Any

import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import openai_client, request

SIMPLE: Any = [{"role": "user", "content": "hi"}]
HARD: Any = [{"role": "user", "content": (
    "Explain step by step why this recursive Python function deadlocks with threads, "
    "then analyze the tradeoffs of each fix in detail."
)}]  # fmt: skip
PRICES = {"small": (0.5, 1.5), "large": (5.0, 15.0)}


def _cost(model: str, usage: Any) -> float:
    prompt, completion = PRICES[model]
    return (usage.prompt_tokens * prompt + usage.completion_tokens * completion) / 1e6


@pytest.mark.parametrize(("messages", "tier", "model"), [(SIMPLE, "fast", "small"), (HARD, "deep", "large")],
                         ids=["simple", "hard"])  # fmt: skip
def test_auto_picks_a_tier_by_complexity(host: RunningHost, messages: Any, tier: str, model: str) -> None:
    with openai_client(host) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, max_tokens=5)
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert raw.headers["x-tidegate-tier"] == tier
    assert raw.headers["x-tidegate-model"] == model
    assert float(raw.headers["x-tidegate-cost"]) == pytest.approx(_cost(model, answer.usage), rel=1e-3)
    debug = dict(part.split("=", 1) for part in raw.headers["x-tidegate-route-debug"].split(";"))
    assert debug["tier"] == tier and "score" in debug
    assert (float(debug["score"]) < 0.4) == (tier == "fast")


def test_tier_header_overrides_the_score(host: RunningHost) -> None:
    with openai_client(host, default_headers={"x-tidegate-tier": "deep"}) as client:
        raw = client.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE, max_tokens=3)
    assert (raw.headers["x-tidegate-tier"], raw.headers["x-tidegate-model"]) == ("deep", "large")
    assert "override=header" in raw.headers["x-tidegate-route-debug"]


def test_streams_carry_the_route_headers(host: RunningHost) -> None:
    with openai_client(host) as client:
        with client.chat.completions.with_streaming_response.create(
            model="auto", messages=HARD, max_tokens=4, stream=True
        ) as response:
            headers = response.headers
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert (headers["x-tidegate-tier"], headers["x-tidegate-model"]) == ("deep", "large")
    assert "x-tidegate-cost" in headers  # sent before the stream's cost is known
    assert len(text.split()) == 4


def test_fallback_from_a_dead_deployment_answers_200(host: RunningHost) -> None:
    with openai_client(host) as client:
        raw = client.chat.completions.with_raw_response.create(model="flaky", messages=SIMPLE, max_tokens=3)
        stream = client.chat.completions.create(model="flaky", messages=SIMPLE, max_tokens=3, stream=True)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == streamed
    assert (raw.headers["x-tidegate-tier"], raw.headers["x-tidegate-model"]) == ("fast", "small")
    debug = raw.headers["x-tidegate-route-debug"]
    assert "requested=flaky" in debug
    # Once the breaker has opened, the dead deployment is skipped without a try: no trail then.
    assert "trail=" not in debug or debug.endswith(">small:ok")


def test_route_headers_on_raw_http(host: RunningHost) -> None:
    """What any HTTP client sees: the headers on the wire, a tier named directly in ``model``."""
    body = {"model": "deep", "messages": SIMPLE, "max_tokens": 2}
    reply = request("POST", host.api_base + "/chat/completions", body=body, headers=host.auth)
    assert reply.status == 200
    assert (reply.headers["x-tidegate-tier"], reply.headers["x-tidegate-model"]) == ("deep", "large")
    assert reply.json()["usage"]["completion_tokens"] == 2
