"""``protect:`` rules for the Flask app's own routes, as a layer around ``app.wsgi_app``.

Why a WSGI layer rather than ``before_request``/``teardown_request``: a ticket must be held until
the response has been sent, and Flask pops the request context (running teardown) as soon as
the view returns, before a streamed body is iterated; ``Response.call_on_close`` is skipped for
``direct_passthrough`` responses (``send_file``). Wrapping the WSGI call sees every response,
404s and static files included, and releases when the server closes the body, which WSGI
servers do once it is sent or the client has left.

Admission runs on the gateway's loop through the public ``Gateway.admit_host``; the release is
submitted to that loop too (tickets and their slots belong to it). Paths under the prefix are
not looked at here: the surfaces apply ``limits:`` to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import get_path_info

from tidegate import Gateway, ShuttingDown, TidegateError, UsageError

from ._loop import LoopThread

if TYPE_CHECKING:
    from ._ext import Tidegate

__all__ = ["Protected"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


async def _admit(gateway: Gateway, path: str, client_ip: str | None, headers: dict[str, str]) -> Any:
    ticket = await gateway.admit_host(path, client_ip=client_ip, headers=headers)
    if ticket is not None:
        await ticket.__aenter__()
    return ticket


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Lower-cased request headers (the server already joined repeated lines with ``", "``)."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


class _Release:
    """Gives an admitted request's ticket back on the loop, once (from whatever thread ends it)."""

    __slots__ = ("_loop", "_ticket")

    def __init__(self, loop: LoopThread, ticket: Any) -> None:
        self._loop = loop
        self._ticket: Any = ticket

    def __call__(self, error: BaseException | None = None) -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is None:
            return
        try:
            self._loop.submit(ticket.__aexit__(type(error) if error else None, error, None))
        except UsageError:  # the loop is gone, and the slots with it
            pass


class _Held:
    """The host's response body, releasing the ticket when the server closes it (or drops it)."""

    __slots__ = ("_body", "_iter", "_release")

    def __init__(self, body: Iterable[bytes], release: _Release) -> None:
        self._body = body
        self._iter: Iterator[bytes] | None = None
        self._release = release

    def __iter__(self) -> _Held:
        return self

    def __next__(self) -> bytes:
        if self._iter is None:
            self._iter = iter(self._body)
        return next(self._iter)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._release()

    def __del__(self) -> None:  # a server that never calls close() must not leak the slots
        self._release()


class Protected:
    """``app.wsgi_app`` with the config's ``protect:`` rules applied outside ``prefix``."""

    def __init__(self, wsgi_app: WSGIApp, extension: Tidegate, prefix: str) -> None:
        self.wsgi_app = wsgi_app
        self._extension = extension
        self._prefix = prefix

    def _is_surface(self, path: str) -> bool:
        prefix = self._prefix
        return not prefix or path == prefix or path.startswith(prefix + "/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = get_path_info(environ)
        if self._is_surface(path):
            return self.wsgi_app(environ, start_response)
        extension = self._extension
        try:
            runtime = extension._current()
            coro = _admit(runtime.gateway, path, environ.get("REMOTE_ADDR"), _headers(environ))
            ticket = runtime.loop.call(coro, extension.timeout)
        except ShuttingDown as exc:  # closed: guarded or not can no longer be told, refuse
            return _refuse(exc, start_response)
        except UsageError:
            if extension.closed:  # close() won the race with this request
                return _refuse(ShuttingDown("tidegate was closed"), start_response)
            raise
        except TidegateError as exc:  # RateLimited (429) or Overloaded (503)
            return _refuse(exc, start_response)
        if ticket is None:
            return self.wsgi_app(environ, start_response)
        release = _Release(runtime.loop, ticket)
        try:
            body = self.wsgi_app(environ, start_response)
        except BaseException as exc:
            release(exc)
            raise
        return _Held(body, release)


def _refuse(exc: TidegateError, start_response: Callable[..., Any]) -> list[bytes]:
    status, headers, body = Gateway.host_refusal(exc)
    fields = [*headers.items(), ("content-length", str(len(body)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", fields)
    return [body]
