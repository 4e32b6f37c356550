"""The host apps the conformance suite serves: the same user app written for each framework.

Each reads the tidegate config named by ``TIDEGATE_CONFIG`` and attaches tidegate the way its
example in ``examples/`` does. A third-party host adapter provides an app with the same host
routes (see ``HOST_ROUTES``) and passes it with ``--tidegate-host name=asgi|wsgi:module:attr``.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["HOST_ROUTES", "MESSAGES", "config_path", "digest", "stream_lines"]

HOST_ROUTES = {
    "GET /": 'JSON {"host": <name>} - the host app answers, not tidegate',
    "POST /echo": 'JSON {"bytes": <body length>, "sha256": <hex>} - any body size',
    "GET /stream?n=N": "text/plain, N lines `line <i>\\n`, streamed (no Content-Length)",
    "GET /host-chat": 'JSON {"content": <text>} - host code calling the gateway in-process',
}
MESSAGES = [{"role": "user", "content": "Say hello from the host app"}]


def config_path() -> str:
    return os.environ["TIDEGATE_CONFIG"]


def digest(body: bytes) -> dict[str, object]:
    return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def stream_lines(n: int) -> list[bytes]:
    return [f"line {i}\n".encode() for i in range(n)]
