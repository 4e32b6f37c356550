"""HTTP plumbing the simulator's handlers share: counters, error replies, header parsing.

Separate from the handlers so the server wrapper and the engine agree on one ``Stats`` and one
error envelope without importing each other.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..config.simulator import FAULT_KINDS
from .simulator_wire import error_body

__all__ = [
    "BadRequest",
    "Stats",
    "abort_connection",
    "header_number",
    "json_response",
    "positive_int",
]

_LINGER_ZERO = struct.pack("ii", 1, 0)
_ENDPOINTS = ("chat", "completions", "embeddings", "models")


class BadRequest(Exception):
    """The client sent something an OpenAI server would answer with 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class Stats:
    """Counters one simulator keeps; ``aborted`` counts clients that left mid-request."""

    __slots__ = ("aborted", "by_endpoint", "completion_tokens", "faults", "in_flight",
                 "prompt_tokens", "requests", "streams")  # fmt: skip

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero everything except ``in_flight``, which tracks live requests, not history."""
        self.requests = 0
        self.by_endpoint = dict.fromkeys(_ENDPOINTS, 0)
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.aborted = 0
        self.streams = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def count(self, endpoint: str) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "in_flight": self.in_flight,
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "aborted": self.aborted,
            "streams": self.streams,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def json_response(
    status: int,
    message: str,
    *,
    kind: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, kind=kind, code=code, param=param),
        content_type="application/json",
        headers=headers,
    )


def abort_connection(request: web.BaseRequest) -> None:
    """Drop the TCP connection with a RST (linger 0), like a crashed upstream does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or math.isinf(value):
        raise BadRequest(f"Expected a number >= 0 in header `{name}`, got `{raw}`", name)
    return value


def positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"Expected `{name}` to be an integer >= 1, got `{value!r}`", name)
    return value
