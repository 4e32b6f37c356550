"""Host routes stay the host's: tidegate answers only under its prefix, and never touches the rest."""

from __future__ import annotations

import hashlib
import os

from tidegate_conformance import RunningHost
from tidegate_conformance.clients import request


def test_host_route_answers(host: RunningHost) -> None:
    reply = request("GET", host.url + "/")
    assert reply.status == 200
    assert reply.json()["host"]  # the host app answered (it names itself)
    assert "x-tidegate-overhead-ms" not in reply.headers


def test_large_body_reaches_the_host_unchanged(host: RunningHost) -> None:
    body = os.urandom(3 * 1024 * 1024)  # far above tidegate's own max_body_size (256kb)
    reply = request("POST", host.url + "/echo", body=body, headers={"content-type": "application/octet-stream"})
    assert reply.status == 200
    assert reply.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_streamed_host_response_arrives_whole(host: RunningHost) -> None:
    reply = request("GET", host.url + "/stream?n=200")
    assert reply.status == 200
    assert "content-length" not in reply.headers  # streamed, not buffered into one body
    assert reply.body == b"".join(f"line {i}\n".encode() for i in range(200))


def test_paths_beside_the_prefix_belong_to_the_host(host: RunningHost) -> None:
    for path in ("/aix", "/ai-other/v1/models", "/nothing"):
        reply = request("GET", host.url + path)
        assert reply.status == 404, path
        assert b'"error"' not in reply.body, f"{path} was answered by tidegate: {reply.body!r}"


def test_host_code_calls_the_gateway_in_process(host: RunningHost) -> None:
    reply = request("GET", host.url + "/host-chat")
    assert reply.status == 200, reply.body
    assert reply.json()["content"]


def test_prefix_routes_are_tidegates_even_under_host_routes(host: RunningHost) -> None:
    reply = request("GET", host.surface + "/v1/unknown", headers=host.auth)
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "not_found"

