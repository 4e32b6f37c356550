"""Admission control: request and token rates, bursts, concurrency caps with bounded queues,
adaptive limits and load shedding, in front of every surface and ``protect:``-ed host route.

The lead-facing surface is :class:`Admission` (one per Gateway), :class:`RequestInfo` and the
:class:`Ticket` it returns; ``error_headers``/``Ticket.headers`` build the response headers.
"""

from __future__ import annotations

from .core import Admission, RequestInfo, Ticket
from .estimate import estimate_chat_tokens, estimate_text_tokens, estimate_value_tokens
from .headers import error_headers, success_headers
from .identity import ClientIdentity
from .store import LocalStorage

__all__ = [
    "Admission",
    "ClientIdentity",
    "LocalStorage",
    "RequestInfo",
    "Ticket",
    "error_headers",
    "estimate_chat_tokens",
    "estimate_text_tokens",
    "estimate_value_tokens",
    "success_headers",
]
