"""OpenAI-compatible surface: ``/v1/chat/completions`` (blocking and SSE) and ``/v1/models``.

Clients built for OpenAI (the official SDKs, LangChain, curl scripts) must work unchanged, so
errors use OpenAI's envelope and statuses, streams end with ``data: [DONE]``, and a failure after
the first byte arrives as an ``error`` event (what the SDK raises on) instead of a cut connection.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence
from typing import Any

import msgspec

from ..admission import estimate_text_tokens, estimate_value_tokens
from ..asgi.http import send_body, start_stream
from ..context import RequestContext
from ..errors import RequestError, TidegateError
from .base import Route, Send, Surface

__all__ = ["OpenAISurface"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_DONE = b"data: [DONE]\n\n"

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "requests"}  # fmt: skip


class _Message(msgspec.Struct):
    role: str


class _ChatRequest(msgspec.Struct):
    """Only what we must check; every other field passes through to the upstream untouched."""

    model: str
    messages: list[_Message]
    stream: bool = False
    stream_options: dict[str, Any] | None = None


_decode_chat = msgspec.json.Decoder(_ChatRequest).decode


def decode_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise RequestError("The request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = _decode(raw)
    except msgspec.DecodeError as exc:
        raise RequestError(
            f"We could not parse the JSON body of your request ({exc})", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RequestError("Expected the request body to be a JSON object", code="invalid_json")
    return body


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    body = decode_json_object(raw)
    try:
        request = _decode_chat(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = None
        if " - at `$." in text:
            param = text.rsplit(" - at `$.", 1)[1].rstrip("`")
        raise RequestError(f"Invalid chat request: {text}", code="invalid_request", param=param) from None
    if not request.messages:
        raise RequestError(
            "Expected `messages` to contain at least 1 message, got 0", param="messages",
            code="invalid_request",
        )
    return body


class OpenAISurface(Surface):
    name = "openai"
    openai_headers = True

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/v1/chat/completions", self.chat_completions, surface=self),
            Route("POST", "/v1/embeddings", self.embeddings, surface=self),
            Route("GET", "/v1/models", self.models, surface=self, tracked=False),
        ]

    def error_body(self, exc: TidegateError) -> bytes:
        return _encode({"error": self.error_object(exc)})

    def error_object(self, exc: TidegateError) -> dict[str, Any]:
        kind = _TYPES.get(exc.status, "server_error" if exc.status >= 500 else "invalid_request_error")
        return {
            "message": exc.message,
            "type": kind,
            "param": getattr(exc, "param", None),
            "code": exc.code,
        }

    async def send_late_error(self, send: Send, exc: TidegateError) -> None:
        event = b"data: " + _encode({"error": self.error_object(exc)}) + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})

    async def chat_completions(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        body = parse_chat_request(raw)
        gateway = self.gateway
        user = body.get("user")
        ticket = await self.admit(
            ctx, model=body["model"], user=user if isinstance(user, str) else None,
            est_tokens=gateway.admission.estimate_chat(body),
        )  # fmt: skip
        agent = gateway.agents.agent_for_model(body["model"]) if gateway.agents is not None else None
        async with ticket:
            if agent is not None:  # a server-side agent serves this model name
                if not body.get("stream"):
                    answer = await gateway.agents.complete_openai(agent, body, ctx=ctx)
                    await send_body(send, 200, _encode(answer))
                    return 200
                return await self._stream(gateway.agents.stream_openai(agent, body, ctx=ctx), send, ctx)
            if not body.get("stream"):
                response = await gateway.complete(body, ctx=ctx)
                usage = response.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
                    await ticket.reconcile(usage["total_tokens"])
                await send_body(send, 200, _encode(response))
                return 200
            return await self._stream(self._metered(body, ticket, ctx), send, ctx)

    async def _metered(self, body: dict[str, Any], ticket: Any, ctx: RequestContext) -> Any:
        """The routed stream, reconciling the token reservation once it ends."""
        usage: Any = None
        parts: list[str] = []
        try:
            async for chunk in self.gateway.stream_complete(body, ctx=ctx):
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                yield chunk
        finally:
            if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
                await ticket.reconcile(usage["total_tokens"])
            else:
                prompt = estimate_value_tokens(body.get("messages"))
                await ticket.reconcile(prompt + estimate_text_tokens("".join(parts)))

    async def _stream(self, stream: Any, send: Send, ctx: RequestContext) -> int:
        """Headers go out only with the first chunk, so early failures are real HTTP errors."""
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await stream.aclose()
            raise
        await start_stream(send)
        try:
            if first is not None:
                await send({"type": "http.response.body", "body": b"data: " + _encode(first) + b"\n\n", "more_body": True})
                async for chunk in stream:
                    await send({"type": "http.response.body", "body": b"data: " + _encode(chunk) + b"\n\n", "more_body": True})
        except TidegateError as exc:
            self.gateway.metrics.errors.labels(self.name, exc.code).inc()
            event = b"data: " + _encode({"error": self.error_object(exc)}) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            await stream.aclose()
        await send({"type": "http.response.body", "body": _DONE, "more_body": False})
        return 200

    async def embeddings(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        """OpenAI ``/v1/embeddings``: a configured embedder, or an upstream of kind ``embeddings``."""
        body = decode_json_object(raw)
        model = body.get("model")
        texts = body.get("input")
        if not isinstance(model, str):
            raise RequestError("Expected `model` to be a string", param="model", code="invalid_request")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise RequestError(
                "Expected `input` to be a non-empty string or array of strings", param="input",
                code="invalid_request",
            )  # fmt: skip
        gateway = self.gateway
        ticket = await self.admit(
            ctx, model=model, est_tokens=estimate_value_tokens(texts)
        )
        async with ticket:
            upstream = gateway.upstreams.get(model)
            if upstream is not None and upstream.config.kind == "embeddings":
                response = await upstream.embeddings(body, ctx=ctx)
                await send_body(send, 200, _encode(response))
                return 200
            vectors = await gateway.embedder_for(model).embed(texts, kind="document")
            tokens = estimate_value_tokens(texts)
            await ticket.reconcile(tokens)
        base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": b64encode(row.astype("<f4").tobytes()).decode() if base64 else row.tolist(),
            }
            for index, row in enumerate(vectors)
        ]
        payload = {"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip
        await send_body(send, 200, _encode(payload))
        return 200

    async def models(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "tidegate"}
            for name in self.gateway.model_names()
        ]
        await send_body(send, 200, _encode({"object": "list", "data": data}))
        return 200
