"""The one exception hierarchy of tidegate.

Every error tidegate raises on purpose derives from :class:`TidegateError`, so host code can catch
ours without catching everything. Surfaces translate these into their own wire envelopes (OpenAI's
``{"error": {...}}``, Dify's ``{code, message, status}``) using the ``status`` and ``code`` fields,
which is why policy outcomes carry structured data instead of only a message::

    TidegateError
    ├── ConfigError (also ValueError)     bad config file or DSL; lists every problem found
    ├── UsageError                        lifecycle misuse (chat() before start(), start() twice…)
    ├── RequestError                      a client sent something we refuse (400/401/404/413…)
    │   ├── AuthenticationError           missing or wrong API key (401)
    │   └── NotFoundError                 unknown model / route (404)
    ├── UpstreamError                     a provider or backend failed; keeps status and cause
    │   └── UpstreamTimeout               connect / first-byte / total deadline passed
    ├── RateLimited                       a limit said no (429, Retry-After)
    ├── Overloaded                        shed by a queue or concurrency cap (503, Retry-After)
    ├── RouteUnavailable                  every deployment for a route is down (503)
    ├── ShuttingDown                      the gateway is draining (503)
    └── WorkflowError                     a workflow run failed at a node
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "NotFoundError",
    "Overloaded",
    "RateLimited",
    "RequestError",
    "RouteUnavailable",
    "ShuttingDown",
    "TidegateError",
    "UpstreamError",
    "UpstreamTimeout",
    "UsageError",
    "WorkflowError",
]


class TidegateError(Exception):
    """Root of every error tidegate raises on purpose.

    ``status`` is the HTTP status a surface answers with and ``code`` a short machine-readable
    reason; surfaces map both into their own envelope.
    """

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, /) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(TidegateError, ValueError):
    """A config file or workflow DSL is wrong.

    All problems found in one pass are collected into ``issues`` so a user fixes them in one go,
    each naming file, path, what was expected and what was found.
    """

    status = 500
    code = "config_error"

    def __init__(self, issues: str | Sequence[str], /, *, source: str | None = None) -> None:
        self.issues: list[str] = [issues] if isinstance(issues, str) else list(issues)
        self.source = source
        if len(self.issues) == 1:
            text = self.issues[0]
        else:
            head = f"{len(self.issues)} problems"
            if source:
                head += f" in {source}"
            text = head + ":\n" + "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(text)


class UsageError(TidegateError):
    """An object was used in the wrong lifecycle state (e.g. ``chat()`` before ``start()``)."""

    code = "usage_error"


class RequestError(TidegateError):
    """The client sent a request we refuse; ``param`` names the offending field when known."""

    status = 400
    code = "invalid_request_error"

    def __init__(
        self,
        message: str,
        /,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.param = param


class AuthenticationError(RequestError):
    status = 401
    code = "invalid_api_key"


class NotFoundError(RequestError):
    status = 404
    code = "not_found"


class UpstreamError(TidegateError):
    """A provider or backend failed.

    ``upstream_status`` keeps what the upstream said (``None`` for connection-level failures),
    ``retry_after`` keeps its Retry-After hint in seconds, and ``__cause__`` the original exception.
    """

    status = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        /,
        *,
        upstream: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body
        if upstream_status == 429:
            self.status = 429
            self.code = "upstream_rate_limited"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class RateLimited(TidegateError):
    """A limit rule refused the request: 429 with Retry-After and RateLimit-* headers."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        /,
        *,
        limit: int,
        remaining: int,
        reset_at: float,
        retry_after: float,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.reset_at = reset_at
        self.retry_after = retry_after
        self.rule = rule


class Overloaded(TidegateError):
    """Shed by a concurrency cap or a full queue: 503 with Retry-After."""

    status = 503
    code = "overloaded"

    def __init__(
        self, message: str, /, *, retry_after: float = 1.0, rule: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rule = rule


class RouteUnavailable(TidegateError):
    """No deployment can serve the route (all breakers open, every fallback failed)."""

    status = 503
    code = "route_unavailable"

    def __init__(self, message: str, /, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(TidegateError):
    """The gateway is draining or stopped; in-flight work was cancelled cleanly."""

    status = 503
    code = "shutting_down"

    def __init__(self, message: str = "tidegate is shutting down", /) -> None:
        super().__init__(message)
        self.retry_after = 1.0


class WorkflowError(TidegateError):
    """A workflow run failed; ``node_id`` names the node where it happened, when there is one."""

    status = 500
    code = "workflow_error"

    def __init__(
        self, message: str, /, *, node_id: str | None = None, node_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.node_type = node_type
