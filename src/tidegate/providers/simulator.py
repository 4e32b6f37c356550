"""The built-in LLM simulator: a real OpenAI-compatible HTTP server that is not a model.

Every test and benchmark needs an upstream that answers like vLLM or OpenAI, with controllable
latency and failures, without a GPU or the network. This one speaks the wire format over real
sockets (so the gateway's client, timeouts and disconnect handling are exercised for real), answers
deterministically from the prompt, and injects faults by rate or per request::

    async with Simulator(SimulatorConfig(ttft=0.05, tokens_per_second=200)) as sim:
        ...  # point an upstream at sim.url

Per-request headers override the config:

- ``X-Sim-TTFT-Ms``, ``X-Sim-TPS``: time to first token and pace of this request;
- ``X-Sim-Tokens``: exact completion length (still cut by the client's ``max_tokens``);
- ``X-Sim-Fault``: ``500``/``503`` (error envelope), ``429`` (with ``Retry-After``, from
  ``X-Sim-Retry-After`` or the config), ``hang`` (never answers), ``reset`` (RST; streams first send
  some chunks), ``malformed`` (a broken chunk mid-stream, or a cut 200 body);
- ``X-Sim-Fault-After: N``: a stream's ``reset``/``malformed``/``hang`` strikes after N content
  chunks (a ``hang`` without it hangs before the response headers);
- ``X-Sim-Tool-Style: react``: play a model without native tool calling that follows a ReAct
  prompt (``Action:`` / ``Action Input:`` lines, then ``Final Answer:``), e.g. set in a model's
  configured ``headers``.

Tool calls are scripted in the prompt: with ``tools`` offered, ``call:NAME({json})`` in the last
user message asks for that call, and ``call@K:NAME({json})`` asks for it in round K (after K-1
rounds of tool results), so one prompt scripts a multi-step agent run.

``GET /sim/stats``, ``POST /sim/reset`` and ``GET|POST /sim/config`` (a JSON patch of
``SimulatorConfig``) let a test watch and steer a running simulator. It is built on aiohttp's
low-level server, which cancels a handler when its client goes away: that is how hung requests end
and aborted streams are counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import msgspec
from aiohttp import web

from ..config.simulator import SimulatorConfig, simulator_config_from, simulator_config_to_builtins
from ..errors import UsageError
from .simulator_embed import HashEmbedder
from .simulator_engine import Engine
from .simulator_http import BadRequest, Stats, abort_connection, json_response

__all__ = ["Simulator", "SimulatorConfig", "main"]

_Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_MODEL_ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}


class Simulator:
    """One simulated upstream on a real port; ``start()`` it, point clients at ``url``, ``stop()``.

    State is ``unopened`` → ``open`` → ``closed``; misuse raises ``UsageError``. Stopping resets
    every in-flight connection (hung ones included) so no handler task outlives the server.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self._stats = Stats()
        self._engine = Engine(config or SimulatorConfig(), self._stats, HashEmbedder())
        self._state = "unopened"
        self._runner: web.ServerRunner | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._inflight: dict[int, web.BaseRequest] = {}
        self._routes: dict[tuple[str, str], _Handler] = {
            ("POST", "/v1/chat/completions"): self._engine.chat,
            ("POST", "/v1/completions"): self._engine.completions,
            ("POST", "/v1/embeddings"): self._engine.embeddings,
            ("GET", "/v1/models"): self._models,
            ("GET", "/sim/stats"): self._get_stats,
            ("POST", "/sim/reset"): self._reset,
            ("GET", "/sim/config"): self._get_config,
            ("POST", "/sim/config"): self._post_config,
        }
        self._paths = {path for _, path in self._routes}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; read it back from ``port``/``url``)."""
        if self._state != "unopened":
            raise UsageError(f"Expected an unopened simulator, got state `{self._state}`")
        server = web.Server(self._dispatch, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])
        self._state = "open"

    async def stop(self) -> None:
        """Stop listening and cut every connection still being served. Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        self._engine.stopping = True
        for request in list(self._inflight.values()):
            abort_connection(request)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- public knobs --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._state != "open":
            raise UsageError(f"Expected a started simulator, got state `{self._state}`")
        return self._port

    @property
    def url(self) -> str:
        """Base URL an OpenAI client takes, ``/v1`` included."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def config(self) -> SimulatorConfig:
        return self._engine.config

    @config.setter
    def config(self, value: SimulatorConfig) -> None:
        self._engine.configure(value)

    def update(self, **changes: Any) -> SimulatorConfig:
        """Patch the running config (what ``POST /sim/config`` does); returns the new config.

        Raises ``msgspec.ValidationError`` with the path of a bad value.
        """
        self._engine.configure(simulator_config_from(changes, self._engine.config))
        return self._engine.config

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (what ``GET /sim/stats`` returns)."""
        return self._stats.as_dict()

    def reset(self) -> None:
        """Zero the counters and re-seed the fault and jitter generators."""
        self._stats.reset()
        self._engine.reseed()

    # -- HTTP ------------------------------------------------------------------------------

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if request.path in self._paths:
                return json_response(405, "method not allowed", kind="invalid_request_error")
            return json_response(404, f"no route {request.path}", kind="invalid_request_error")
        endpoint = _MODEL_ENDPOINTS.get(request.path)
        if endpoint is None:
            return await handler(request)
        stats = self._stats
        stats.count(endpoint)
        stats.in_flight += 1
        key = id(request)
        self._inflight[key] = request
        try:
            return await handler(request)
        except BadRequest as exc:
            return json_response(400, exc.message, kind="invalid_request_error", param=exc.param)
        except asyncio.CancelledError:
            if not self._engine.stopping:
                stats.aborted += 1
            raise
        finally:
            stats.in_flight -= 1
            del self._inflight[key]

    async def _models(self, request: web.BaseRequest) -> web.Response:
        self._stats.count("models")
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "tidegate-simulator"}
            for name in self._engine.config.models
        ]
        return web.Response(
            body=msgspec.json.encode({"object": "list", "data": data}),
            content_type="application/json",
        )

    async def _get_stats(self, request: web.BaseRequest) -> web.Response:
        return web.json_response(self.stats)

    async def _reset(self, request: web.BaseRequest) -> web.Response:
        self.reset()
        return web.json_response(self.stats)

    async def _get_config(self, request: web.BaseRequest) -> web.Response:
        return web.json_response(simulator_config_to_builtins(self._engine.config))

    async def _post_config(self, request: web.BaseRequest) -> web.Response:
        try:
            patch = msgspec.json.decode(await request.content.read())
            self._engine.configure(simulator_config_from(patch, self._engine.config))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return json_response(400, str(exc), kind="invalid_request_error")
        return web.json_response(simulator_config_to_builtins(self._engine.config))


def main(argv: list[str] | None = None) -> int:
    """``tidegate simulate`` / ``python -m tidegate.providers.simulator``: serve until a signal."""
    from .simulator_cli import run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
