"""The ``Tidegate`` Flask extension: surfaces at the prefix, a gateway loop, sync helpers.

This is the one place where sync code crosses into tidegate's async core (no sync mirror of the
Gateway exists): every crossing is ``run_coroutine_threadsafe`` onto one loop thread per process,
and every stream comes back through a bounded ``Channel``. The loop and Gateway are per process
(rebuilt from the config after a fork, e.g. gunicorn ``--preload``), and shut down by ``close()``
or at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import AsyncIterable, Coroutine, Iterator
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from werkzeug.wsgi import get_input_stream

from tidegate import (
    Gateway,
    ShuttingDown,
    TidegateConfig,
    TidegateMiddleware,
    UsageError,
    load_config,
)

from ._channel import Channel, Drain
from ._exchange import Exchange, environ_to_scope, read_body
from ._loop import LoopThread
from ._protect import Protected

__all__ = ["Tidegate"]

T = TypeVar("T")
ConfigLike = Gateway | TidegateConfig | str | os.PathLike[str]

_log = logging.getLogger("tidegate.flask")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_CLOSED_BODY = (
    b'{"error": {"message": "tidegate is shut down", "type": "server_error", "param": null,'
    b' "code": "shutting_down"}}'
)


async def _no_host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Never reached: every path handed to the surfaces lies under the gateway's prefix."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _build(config: TidegateConfig) -> Gateway:
    return Gateway(config)


class _Runtime:
    """The per-process part: loop thread, started Gateway, and the ASGI surfaces app."""

    def __init__(self, config: TidegateConfig, gateway: Gateway | None, start_timeout: float) -> None:
        self.pid = os.getpid()
        self.loop = LoopThread()
        self.loop.start()
        try:
            self.gateway = gateway if gateway is not None else self.loop.call(_build(config), 30)
            if self.gateway.state == "unopened":
                self.loop.call(self.gateway.start(), start_timeout)
            self.app = TidegateMiddleware(_no_host, gateway=self.gateway)
        except BaseException:
            self.loop.stop()
            raise

    def close(self, timeout: float | None) -> None:
        drain = float(self.gateway.config.shutdown_timeout) if timeout is None else timeout
        try:
            if self.loop.alive:
                self.loop.call(self.gateway.stop(timeout=drain), drain + 5)
        finally:
            self.loop.stop()


class Tidegate:
    """``Tidegate(app, "tidegate.yaml")`` or ``ext = Tidegate(); ext.init_app(app)``.

    The config comes from ``config=`` or ``app.config["TIDEGATE_CONFIG"]`` (a path, a
    ``TidegateConfig`` or an unopened ``Gateway``, whose lifecycle the extension then owns).
    ``queue_size`` bounds the chunks buffered per stream between the loop and a WSGI thread;
    ``timeout`` bounds each wait of a WSGI thread on the loop. With ``start=True`` the gateway
    starts in ``init_app`` so config and upstream problems show at boot, not on the first request.
    With ``protect:`` rules in the config, ``init_app`` wraps ``app.wsgi_app`` so the app's own
    routes are admitted (or refused with 429/503) by them; see ``_protect``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        config: ConfigLike | None = None,
        *,
        prefix: str | None = None,
        queue_size: int = 32,
        timeout: float = 300.0,
        start: bool = True,
    ) -> None:
        if queue_size < 1:
            raise UsageError(f"Expected `queue_size` >= 1, got `{queue_size}`")
        self.queue_size = queue_size
        self.timeout = timeout
        self._config_arg = config
        self._prefix_arg = prefix
        self._eager = start
        self._config: TidegateConfig | None = None
        self._gateway_arg: Gateway | None = None
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._atexit = False
        if app is not None:
            self.init_app(app)

    # -- setup -----------------------------------------------------------------------------------

    def init_app(self, app: Flask, config: ConfigLike | None = None) -> None:
        source = config if config is not None else self._config_arg
        if source is None:
            source = app.config.get("TIDEGATE_CONFIG")
        if source is None:
            raise UsageError("Tidegate needs a config: pass `config=` or set app.config['TIDEGATE_CONFIG']")
        if isinstance(source, Gateway):
            self._gateway_arg, cfg = source, source.config
        else:
            cfg = source if isinstance(source, TidegateConfig) else load_config(source)
        if self._config is not None and cfg is not self._config:
            raise UsageError("One Tidegate serves one config; create another Tidegate for another")
        self._config = cfg
        raw = cfg.prefix if self._prefix_arg is None else self._prefix_arg
        at = "/" + raw.strip("/") if raw.strip("/") else ""
        app.add_url_rule(
            f"{at}/<path:path>", endpoint="tidegate", view_func=self._view, methods=_METHODS,
            provide_automatic_options=False,
        )  # fmt: skip
        app.extensions["tidegate"] = self
        if cfg.protect:  # host routes under `protect:` rules: admitted on the loop, held to the end
            app.wsgi_app = Protected(app.wsgi_app, self, at)  # type: ignore[method-assign]
        if self._eager:
            self.start()

    def start(self) -> Gateway:
        """Start this process's loop thread and Gateway now (otherwise on first use)."""
        return self._current().gateway

    @property
    def gateway(self) -> Gateway:
        """The running Gateway of this process (for ``extension.run(gateway.method(...))``)."""
        return self._current().gateway

    @property
    def closed(self) -> bool:
        return self._closed

    def _current(self) -> _Runtime:
        runtime = self._runtime  # the fast path every request takes: no lock
        if runtime is not None and runtime.pid == os.getpid() and not self._closed:
            return runtime
        with self._lock:
            if self._closed:
                raise ShuttingDown("tidegate was closed")
            runtime = self._runtime
            if runtime is not None and runtime.pid == os.getpid():
                return runtime
            if self._config is None:
                raise UsageError("Tidegate is not initialised: call `init_app(app)` first")
            if runtime is not None and self._gateway_arg is not None:
                raise UsageError(
                    "A Gateway object cannot cross a fork (its sessions live in the parent): "
                    "give Tidegate a config instead when the server forks workers"
                )
            start_timeout = float(self._config.shutdown_timeout) + 30
            runtime = self._runtime = _Runtime(self._config, self._gateway_arg, start_timeout)
            if not self._atexit:
                atexit.register(self.close)
                self._atexit = True
            return runtime

    def close(self, timeout: float | None = None) -> None:
        """Drain in-flight requests (up to ``timeout``, default the config's ``shutdown_timeout``),
        stop the Gateway and the loop thread. Idempotent; later requests get a 503."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runtime, self._runtime = self._runtime, None
        if self._atexit:
            atexit.unregister(self.close)
        if runtime is not None and runtime.pid == os.getpid():
            runtime.close(timeout)
            _log.info("tidegate stopped: gateway drained and closed, loop thread joined")

    # -- the surfaces ----------------------------------------------------------------------------

    def _view(self, path: str) -> Response:
        try:
            runtime = self._current()
        except ShuttingDown:
            return self._closed_response()
        config = runtime.gateway.config
        environ = request.environ
        scope = environ_to_scope(environ, f"{config.prefix}/{path}")
        body = read_body(get_input_stream(environ), environ.get("CONTENT_LENGTH"), int(config.max_body_size))
        exchange = Exchange(runtime.loop, body, queue_size=self.queue_size)
        try:
            exchange.start(runtime.app, scope)
        except UsageError:  # close() won the race with this request
            return self._closed_response()
        try:
            status, headers = exchange.response_start(self.timeout)
            first, more = exchange.first_body(self.timeout)
        except BaseException:
            exchange.disconnect()
            raise
        response_class = current_app.response_class
        if not more:
            return response_class(first, status=status, headers=headers, direct_passthrough=True)
        stream = exchange.rest(first, self.timeout)
        return response_class(stream, status=status, headers=headers, direct_passthrough=True)

    @staticmethod
    def _closed_response() -> Response:
        return current_app.response_class(
            _CLOSED_BODY, status=503, content_type="application/json", headers={"Retry-After": "1"}
        )

    # -- sync helpers for view code --------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run any coroutine on the gateway's loop and return its result (from a sync view)."""
        try:
            runtime = self._current()
        except BaseException:
            coro.close()  # never scheduled: close it rather than leak a never-awaited coroutine
            raise
        return runtime.loop.call(coro, self.timeout if timeout is None else timeout)

    def iterate(self, source: AsyncIterable[T], *, timeout: float | None = None) -> Iterator[T]:
        """Iterate an async iterable that runs on the gateway's loop, through a bounded channel.

        Closing the returned iterator early cancels the producer (and so the upstream call).
        """
        runtime = self._current()
        channel = Channel(runtime.loop.loop, self.queue_size)
        wait = self.timeout if timeout is None else timeout

        async def pump() -> None:
            async for item in source:
                await channel.put(item)

        future = runtime.loop.submit(pump())
        future.add_done_callback(
            lambda f: channel.end(ShuttingDown() if f.cancelled() else f.exception())
        )
        return Drain(channel, wait, future.cancel)

    def chat(self, messages: list[dict[str, Any]], *, model: str, timeout: float | None = None,
             **params: Any) -> dict[str, Any]:  # fmt: skip
        """``gateway.chat`` from sync code: the OpenAI ``chat.completion`` dict."""
        return self.run(self.gateway.chat(messages, model=model, **params), timeout=timeout)

    def stream_chat(self, messages: list[dict[str, Any]], *, model: str,
                    timeout: float | None = None, **params: Any) -> Iterator[dict[str, Any]]:  # fmt: skip
        """``gateway.stream_chat`` from sync code: ``chat.completion.chunk`` dicts."""
        return self.iterate(self.gateway.stream_chat(messages, model=model, **params), timeout=timeout)

    def run_workflow(self, name: str, inputs: dict[str, Any] | None = None, *,
                     timeout: float | None = None, **options: Any) -> Any:  # fmt: skip
        """``gateway.run_workflow`` from sync code: the run's ``RunResult`` (status, outputs…)."""
        return self.run(self.gateway.run_workflow(name, inputs, **options), timeout=timeout)

    def stream_workflow(self, name: str, inputs: dict[str, Any] | None = None, *,
                        timeout: float | None = None, **options: Any) -> Iterator[Any]:  # fmt: skip
        """``gateway.stream_workflow`` from sync code: its events, through a bounded channel.

        Closing the iterator early stops the run."""
        return self.iterate(self.gateway.stream_workflow(name, inputs, **options), timeout=timeout)
