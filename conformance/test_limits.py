"""Admission limits through every host: what a refused client sees, and what an admitted one is told.

The config's ``conformance-requests`` rule allows 10 requests a minute per ``x-conformance-limit``
value on the embeddings path; each scenario sends a fresh value, so it starts with the whole
budget. ``conformance-guarded`` protects the host path ``/guarded/*`` (2 a minute per address),
which the host apps do not serve: admitted requests get the host's own 404, refused ones tidegate's 429.
"""

from __future__ import annotations

import uuid

import openai
import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import openai_client
from tidegate_conformance.clients import request as http

LIMIT = 10
EMBEDDER = "lexical"


def _fresh_key() -> dict[str, str]:
    return {"x-conformance-limit": uuid.uuid4().hex}


def test_admitted_requests_carry_ratelimit_headers(host: RunningHost) -> None:
    with openai_client(host, default_headers=_fresh_key()) as client:
        remaining = []
        for _ in range(3):
            raw = client.embeddings.with_raw_response.create(model=EMBEDDER, input="count me")
            headers = raw.headers
            assert headers["ratelimit-limit"] == str(LIMIT)
            assert headers["ratelimit-policy"] == f"{LIMIT};w=60"
            assert 0 < int(headers["ratelimit-reset"]) <= 60
            assert headers["x-ratelimit-limit-requests"] == str(LIMIT)
            assert headers["x-ratelimit-remaining-requests"] == headers["ratelimit-remaining"]
            remaining.append(int(headers["ratelimit-remaining"]))
    assert remaining == [LIMIT - 1, LIMIT - 2, LIMIT - 3]


def test_over_the_limit_is_429_in_openais_envelope(host: RunningHost) -> None:
    key = _fresh_key()
    with openai_client(host, default_headers=key) as client:
        for _ in range(LIMIT):
            client.embeddings.create(model=EMBEDDER, input="spend the budget")
        with pytest.raises(openai.RateLimitError) as info:
            client.embeddings.create(model=EMBEDDER, input="one too many")
    error = info.value
    assert error.status_code == 429
    assert isinstance(error.body, dict) and set(error.body) == {"message", "type", "param", "code"}
    assert error.body["type"] == "requests" and error.code
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["ratelimit-limit"] == str(LIMIT) and headers["ratelimit-remaining"] == "0"
    assert int(headers["ratelimit-reset"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == str(LIMIT)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    # Another key value has its own budget: the rule counts per header value.
    with openai_client(host, default_headers=_fresh_key()) as client:
        assert client.embeddings.create(model=EMBEDDER, input="still fine").data


def test_limit_is_scoped_to_its_path(host: RunningHost) -> None:
    """The rule's scope is the embeddings path: chat requests with a spent key are not counted."""
    key = _fresh_key()
    for _ in range(LIMIT):
        reply = http("POST", host.api_base + "/embeddings", body={"model": EMBEDDER, "input": "x"},
                        headers={**host.auth, **key})  # fmt: skip
        assert reply.status == 200
    body = {"model": "light", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    chat = http("POST", host.api_base + "/chat/completions", body=body, headers={**host.auth, **key})
    assert chat.status == 200 and "ratelimit-limit" not in chat.headers


def test_protected_host_route(host: RunningHost) -> None:
    path = f"/guarded/{uuid.uuid4().hex}"
    admitted = [http("GET", host.url + path) for _ in range(2)]
    for reply in admitted:  # the host's own answer: tidegate let it through untouched
        assert reply.status == 404 and b'"error"' not in reply.body, reply.body
    refused = http("GET", host.url + path)
    assert refused.status == 429, refused.body
    assert refused.headers["content-type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["status"] == 429 and error["code"] and error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "2" and refused.headers["ratelimit-remaining"] == "0"
    # Routes the rule does not name stay unguarded.
    assert all(http("GET", host.url + "/").status == 200 for _ in range(3))
