"""Clients the scenarios drive hosts with: real ones, used the way users use them.

- the official ``openai`` SDK (sync, async, streaming),
- ``curl -N`` for SSE exactly as it comes off the wire,
- a PyPI Dify client (``dify-client-python``) for the Dify surface scenarios,
- ``http.client`` for raw requests (bad JSON, large bodies, chunk timing), where an SDK would hide
  what the server sent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    import openai

    from . import RunningHost

__all__ = [
    "Reply",
    "async_dify_client",
    "async_openai_client",
    "close_shared_clients",
    "curl_sse",
    "dify_client",
    "openai_client",
    "request",
    "sse_data",
    "timed_lines",
]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout), path


def request(
    method: str, url: str, *, body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None, timeout: float = 15.0,
) -> Reply:  # fmt: skip
    """One HTTP request on a fresh connection; header names come back lower-cased."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"content-type": "application/json"} if isinstance(body, dict) else {}
    conn, path = _connection(url, timeout)
    try:
        conn.request(method, path, body=data, headers={**sent, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
    finally:
        conn.close()


def timed_lines(
    url: str, body: dict[str, Any], *, headers: dict[str, str] | None = None, timeout: float = 15.0
) -> tuple[Reply, list[tuple[float, bytes]]]:
    """POST and read the response line by line, noting when each line arrived (monotonic s)."""
    conn, path = _connection(url, timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"content-type": "application/json", **(headers or {})})  # fmt: skip
        response = conn.getresponse()
        lines: list[tuple[float, bytes]] = []
        while line := response.readline():
            lines.append((time.monotonic(), line))
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, b"")
        return reply, lines
    finally:
        conn.close()


def sse_data(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def curl_sse(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[str, str]:
    """``curl -N`` a streaming POST: (response head, raw body text) exactly as curl saw them."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    args = [curl, "-sS", "-N", "--max-time", "20", "-D", "-", "-X", "POST", url,
            "-H", "content-type: application/json", "-d", json.dumps(body)]  # fmt: skip
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, check=True, timeout=30).stdout.decode()
    head, _, rest = out.partition("\r\n\r\n")
    return head, rest


def openai_client(host: RunningHost, **kwargs: Any) -> openai.OpenAI:
    import openai

    options: dict[str, Any] = {"base_url": host.api_base, "api_key": host.api_key, "max_retries": 0, "timeout": 15.0}
    return openai.OpenAI(**{**options, **kwargs})


def async_openai_client(host: RunningHost, **kwargs: Any) -> openai.AsyncOpenAI:
    import openai

    options: dict[str, Any] = {"base_url": host.api_base, "api_key": host.api_key, "max_retries": 0, "timeout": 15.0}
    return openai.AsyncOpenAI(**{**options, **kwargs})


def dify_client(host: RunningHost, app_key: str) -> Any:
    """A ``dify_client.Client`` (PyPI ``dify-client-python``) aimed at the host's Dify surface;
    ``app_key`` is the workflow app's key from the config."""
    try:
        from dify_client import Client
    except ImportError:
        pytest.skip("dify-client-python is not installed")
    return Client(api_key=app_key, api_base=host.api_base)


def close_shared_clients() -> None:
    """Close the Dify library's module-level sync ``httpx.Client`` (its kept-alive connections
    would otherwise be left for interpreter exit to report as unclosed sockets)."""
    module = sys.modules.get("dify_client._clientx")
    if module is not None:
        module._httpx_client.close()


@contextlib.asynccontextmanager
async def async_dify_client(host: RunningHost, app_key: str) -> AsyncIterator[Any]:
    """The same client's async flavour (``dify_client.AsyncClient``, ``a``-prefixed methods).

    The library sends through one module-level ``httpx.AsyncClient``, whose pooled connections
    belong to the event loop that opened them; pytest-asyncio gives each test a loop of its own,
    so for the duration of the ``async with`` the library gets a client of this loop (closed after).
    """
    try:
        from dify_client import AsyncClient, _clientx
    except ImportError:
        pytest.skip("dify-client-python is not installed")
    import httpx

    async with httpx.AsyncClient() as http:
        shared = _clientx._async_httpx_client
        _clientx._async_httpx_client = http
        try:
            yield AsyncClient(api_key=app_key, api_base=host.api_base)
        finally:
            _clientx._async_httpx_client = shared
