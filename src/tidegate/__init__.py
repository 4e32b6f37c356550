"""tidegate: an in-process, high-concurrency AI application server for any ASGI web app.

Mount :class:`TidegateMiddleware` in a host app (or drive a :class:`Gateway` from host code) and
point it at one config file; see README.md.
"""

from __future__ import annotations

from .asgi.middleware import TidegateMiddleware
from .config import TidegateConfig, load_config
from .context import RequestContext
from .errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    Overloaded,
    RateLimited,
    RequestError,
    RouteUnavailable,
    ShuttingDown,
    TidegateError,
    UpstreamError,
    UpstreamTimeout,
    UsageError,
    WorkflowError,
)
from .gateway import Gateway

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "Gateway",
    "NotFoundError",
    "Overloaded",
    "RateLimited",
    "RequestContext",
    "RequestError",
    "RouteUnavailable",
    "ShuttingDown",
    "TidegateConfig",
    "TidegateError",
    "TidegateMiddleware",
    "UpstreamError",
    "UpstreamTimeout",
    "UsageError",
    "WorkflowError",
    "__version__",
    "load_config",
]
