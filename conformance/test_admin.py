"""Operational endpoints through every host: Prometheus metrics and health."""

from __future__ import annotations

import re

from tidegate_conformance import RunningHost
from tidegate_conformance.clients import request


def _requests_total(text: str) -> float:
    pattern = r'tidegate_requests_total\{endpoint="/v1/chat/completions",status="200",surface="openai"\} ([\d.e+]+)'
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests(host: RunningHost) -> None:
    before = _requests_total(request("GET", host.surface + "/metrics").body.decode())
    body = {"model": "light", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 2}
    assert request("POST", host.api_base + "/chat/completions", body=body, headers=host.auth).status == 200
    reply = request("GET", host.surface + "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert _requests_total(text) == before + 1
    assert 'tidegate_tokens_total{kind="completion",model="light"}' in text
    assert "tidegate_upstream_duration_seconds_bucket" in text


def test_health_reports_a_running_gateway(host: RunningHost) -> None:
    reply = request("GET", host.surface + "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "state": "running", "in_flight": 0}
