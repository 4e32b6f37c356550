"""Lifespan through every host: the gateway is up when the server is, and stops with it cleanly."""

from __future__ import annotations

from collections.abc import Callable

from tidegate_conformance import API_KEY, HostSpec, Suite
from tidegate_conformance.clients import request
from tidegate_conformance.processes import ServerProcess, exited_cleanly, unclean_lines


def test_start_serve_stop(
    host_spec: HostSpec, launch_host: Callable[..., ServerProcess], conformance: Suite
) -> None:
    server = launch_host(host_spec, log_level="info")
    surface = server.url + conformance.prefix
    health = request("GET", surface + "/healthz").json()
    assert health["state"] == "running"  # started with the server, not lazily by a request
    body = {"model": "light", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    reply = request("POST", surface + "/v1/chat/completions", body=body,
                    headers={"authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert reply.status == 200
    code, output = server.stop()
    assert exited_cleanly(code), output
    assert unclean_lines(output) == [], output
    if host_spec.stopped_marker:
        assert host_spec.stopped_marker in output, output
