"""Errors keep OpenAI's envelope and status through every host (what the SDKs raise on)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from tidegate_conformance import RunningHost
from tidegate_conformance.clients import openai_client, request

MESSAGES: Any = [{"role": "user", "content": "hi"}]


def _error(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


def test_bad_json(host: RunningHost) -> None:
    reply = request("POST", host.api_base + "/chat/completions", body=b"{not json",
                    headers={**host.auth, "content-type": "application/json"})  # fmt: skip
    assert _error(reply, 400, "invalid_json")["type"] == "invalid_request_error"


def test_missing_messages_names_the_field(host: RunningHost) -> None:
    reply = request("POST", host.api_base + "/chat/completions", body={"model": "light", "messages": []},
                    headers=host.auth)  # fmt: skip
    assert _error(reply, 400, "invalid_request")["param"] == "messages"


def test_body_over_the_limit_is_413(host: RunningHost) -> None:
    big = {"model": "light", "messages": [{"role": "user", "content": "x" * 300_000}]}
    reply = request("POST", host.api_base + "/chat/completions", body=big, headers=host.auth)
    _error(reply, 413, "request_too_large")


def test_unknown_model_is_404_for_the_sdk(host: RunningHost) -> None:
    with openai_client(host) as client, pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_missing_or_wrong_key_is_401(host: RunningHost, key: str | None) -> None:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    reply = request("POST", host.api_base + "/chat/completions", body={"model": "light", "messages": MESSAGES},
                    headers=headers)  # fmt: skip
    _error(reply, 401, "invalid_api_key")
    if key:  # the SDK refuses to send no key at all
        with openai_client(host, api_key=key) as client, pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_wrong_method_is_405(host: RunningHost) -> None:
    reply = request("GET", host.api_base + "/chat/completions", headers=host.auth)
    _error(reply, 405, "method_not_allowed")
