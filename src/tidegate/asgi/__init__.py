"""ASGI plumbing: the middleware and the small request/response helpers surfaces share."""

from __future__ import annotations

from .middleware import TidegateMiddleware

__all__ = ["TidegateMiddleware"]
