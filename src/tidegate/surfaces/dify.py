"""Dify service-API surface: run workflows and chatflows the way Dify's clients expect.

A workflow is an app: the Bearer key in ``Authorization`` selects it (each workflow's
``api_keys``), so these routes do their own key lookup instead of the gateway's. Requests and
responses follow Dify's service API: blocking JSON or an SSE stream of ``data: {json}`` events
(``event: ping`` every 10 s while nothing else is sent), the error envelope
``{code, message, status}``, and for chatflows the ``message`` / ``message_end`` events with
conversations kept in the gateway's TTL-bounded session store. ``message_end`` (and a blocking
answer's ``metadata``) cite what knowledge-retrieval nodes found as ``retriever_resources``, unless
the DSL turns the ``retriever_resource`` feature off. The conversation endpoints (list, messages,
rename, delete, variables) live in :mod:`.dify_conversations`.

Path-parameter routes (``/v1/workflows/tasks/{task_id}/stop``, ``/v1/chat-messages/{task_id}/stop``)
are declared in :meth:`DifySurface.patterns`; the surface app dispatches them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..admission import estimate_text_tokens, estimate_value_tokens
from ..asgi.http import send_body, start_stream
from ..context import RequestContext
from ..engine.events import Event, TextChunk, WorkflowFinished
from ..engine.runner import Conversation as RunConversation
from ..errors import AuthenticationError, RequestError, TidegateError, WorkflowError
from .base import Route, Send, Surface
from .dify_conversations import DifyConversations

if TYPE_CHECKING:
    from ..engine.apps import WorkflowApp, WorkflowApps
    from ..engine.runner import RunResult, WorkflowRun
    from ..gateway import Gateway

__all__ = ["DifySurface"]

_encode = msgspec.json.Encoder().encode
_PING = b"event: ping\n\n"
_NOT_WORKFLOW = "Please check if your app mode matches the right API route."

PatternHandler = Callable[[RequestContext, bytes, Send, str], Awaitable[int]]


class _RunRequest(msgspec.Struct):
    user: str
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    response_mode: Literal["blocking", "streaming"] = "blocking"
    files: list[dict[str, Any]] | None = None


class _ChatRequest(msgspec.Struct):
    user: str
    query: str
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    response_mode: Literal["blocking", "streaming"] = "blocking"
    conversation_id: str | None = None
    files: list[dict[str, Any]] | None = None
    auto_generate_name: bool = True


class _StopRequest(msgspec.Struct):
    user: str


def _decode(raw: bytes, tp: type[Any]) -> Any:
    if not raw:
        raise RequestError("The request body is empty; expected a JSON object", code="invalid_param")
    try:
        return msgspec.json.decode(raw, type=tp)
    except msgspec.ValidationError as exc:
        text = str(exc)
        missing = re.match(r"Object missing required field `(\w+)`", text)
        message = f"Arg {missing.group(1)} must be provided." if missing else text
        raise RequestError(message, code="invalid_param") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The request body is not valid JSON ({exc})", code="invalid_param") from None


class DifySurface(Surface):
    name = "dify"
    ping_interval = 10.0

    def __init__(self, gateway: Gateway, apps: WorkflowApps | None = None) -> None:
        super().__init__(gateway)
        self._apps = apps
        self.conversations = DifyConversations(self)

    @property
    def apps(self) -> WorkflowApps:
        apps = self._apps or getattr(self.gateway, "workflows", None)
        if apps is None:
            raise RequestError("No workflows are configured", status=404, code="not_found")
        return apps

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/v1/workflows/run", self.workflows_run, surface=self, auth=False),
            Route("POST", "/v1/chat-messages", self.chat_messages, surface=self, auth=False),
            Route("POST", "/v1/completion-messages", self.completion_messages, surface=self, auth=False),
            Route("GET", "/v1/parameters", self.parameters, surface=self, auth=False, tracked=False),
            Route("GET", "/v1/info", self.info, surface=self, auth=False, tracked=False),
            *self.conversations.routes(),
        ]

    def patterns(self) -> Sequence[tuple[str, re.Pattern[str], PatternHandler]]:
        """Routes with a path parameter: (method, regex with one group, handler taking it)."""
        return [
            ("POST", re.compile(r"^/v1/workflows/tasks/([^/]+)/stop$"), self.stop_task),
            ("POST", re.compile(r"^/v1/chat-messages/([^/]+)/stop$"), self.stop_task),
            *self.conversations.patterns(),
        ]

    # -- errors -----------------------------------------------------------------------------------

    def error_body(self, exc: TidegateError) -> bytes:
        return _encode(self.error_object(exc))

    @staticmethod
    def error_object(exc: TidegateError) -> dict[str, Any]:
        code = exc.code
        if code in ("invalid_request_error", "invalid_request", "invalid_json"):
            code = "invalid_param"
        return {"code": code, "message": exc.message, "status": exc.status}

    async def send_late_error(self, send: Send, exc: TidegateError) -> None:
        event = b"data: " + _encode({"event": "error", **self.error_object(exc)}) + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- auth -------------------------------------------------------------------------------------

    def _app(self, ctx: RequestContext) -> WorkflowApp:
        header = ctx.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "Authorization header must be provided and start with 'Bearer'", code="unauthorized"
            )
        app = self.apps.by_key(token.strip())
        if app is None:
            raise AuthenticationError("Access token is invalid", code="unauthorized")
        ctx.tenant = ctx.api_key_name = app.name
        return app

    # -- endpoints --------------------------------------------------------------------------------

    async def workflows_run(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._app(ctx)
        request: _RunRequest = _decode(raw, _RunRequest)
        if app.mode != "workflow":
            raise RequestError(_NOT_WORKFLOW, code="not_workflow_app")
        ctx.user = request.user
        ticket = await self.admit(
            ctx, workflow=app.name, user=request.user, est_tokens=estimate_value_tokens(request.inputs)
        )
        run = await self.apps.start_run(app, request.inputs, user=request.user, files=request.files)
        ctx.response_headers.append(("x-tidegate-workflow-version", run.runner.workflow_id))
        async with ticket, run:
            if request.response_mode == "blocking":
                result = await run.wait()
                data = {
                    "id": result.workflow_run_id, "workflow_id": result.workflow_id, "status": result.status,
                    "outputs": result.outputs, "error": result.error, "elapsed_time": result.elapsed_time,
                    "total_tokens": result.total_tokens, "total_steps": result.total_steps,
                    "created_at": result.created_at, "finished_at": result.finished_at,
                }  # fmt: skip
                await send_body(send, 200, _encode({"task_id": run.task_id, "workflow_run_id": run.run_id, "data": data}))
                return 200
            envelope = {"task_id": run.task_id, "workflow_run_id": run.run_id}
            return await self._stream(run, send, lambda event: [_frame(event, envelope)])

    async def chat_messages(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._app(ctx)
        request: _ChatRequest = _decode(raw, _ChatRequest)
        if app.mode != "advanced-chat":
            raise RequestError(_NOT_WORKFLOW, code="not_chat_app")
        if not request.query.strip():
            raise RequestError("query is required", code="invalid_param", param="query")
        ctx.user = request.user
        ticket = await self.admit(
            ctx, workflow=app.name, user=request.user,
            est_tokens=estimate_value_tokens(request.inputs) + estimate_text_tokens(request.query),
        )  # fmt: skip
        sessions = self.apps.sessions
        stored = await sessions.open(app.name, request.user, request.conversation_id or None, inputs=request.inputs)
        inputs = request.inputs or stored.inputs
        conversation = RunConversation(stored.id, variables=stored.variables, history=sessions.window(stored),
                                       dialogue_count=len(stored.turns))  # fmt: skip
        run = await self.apps.start_run(app, inputs, user=request.user, query=request.query,
                                        files=request.files, conversation=conversation)  # fmt: skip
        ctx.response_headers.append(("x-tidegate-workflow-version", run.runner.workflow_id))
        message_id = str(uuid.uuid4())
        created = int(time.time())
        head = {"conversation_id": stored.id, "message_id": message_id, "created_at": created}

        def cited() -> list[dict[str, Any]]:
            return _citations(run.runner.workflow.spec.features, run.result)

        async def persist() -> None:
            result = run.result
            if result is None or result.status not in ("succeeded", "partial-succeeded"):
                return
            stored.variables = conversation.variables
            await sessions.append(stored, query=request.query, answer=result.answer, inputs=inputs, turn_id=message_id,
                                  metadata={"usage": result.usage, "retriever_resources": cited()})  # fmt: skip

        def usage() -> dict[str, Any]:
            result = run.result
            return _usage(result.usage if result else {}, result.elapsed_time if result else 0.0)

        async with ticket, run:
            if request.response_mode == "blocking":
                result = await run.wait()
                if result.status not in ("succeeded", "partial-succeeded"):
                    raise WorkflowError(result.error or f"workflow {result.status}")
                await persist()
                body = {"event": "message", "task_id": run.task_id, "id": message_id, "message_id": message_id,
                        "conversation_id": stored.id, "mode": "advanced-chat", "answer": result.answer,
                        "metadata": {"usage": usage(), "retriever_resources": cited()}, "created_at": created}  # fmt: skip
                await send_body(send, 200, _encode(body))
                return 200
            envelope = {"task_id": run.task_id, "workflow_run_id": run.run_id, **head}

            def frames(event: Event) -> list[bytes]:
                if isinstance(event, TextChunk):
                    return [_data({"event": "message", "id": message_id, "task_id": run.task_id,
                                   "message_id": message_id, "conversation_id": stored.id,
                                   "answer": event.text, "created_at": created})]  # fmt: skip
                return [_frame(event, envelope)]

            async def finish(event: WorkflowFinished) -> list[bytes]:
                if event.status not in ("succeeded", "partial-succeeded"):
                    error = WorkflowError(event.error or f"workflow {event.status}")
                    return [_data({"event": "error", "task_id": run.task_id, "message_id": message_id,
                                   "conversation_id": stored.id, **self.error_object(error)})]  # fmt: skip
                await persist()
                return [_data({"event": "message_end", "id": message_id, "task_id": run.task_id,
                               "message_id": message_id, "conversation_id": stored.id, "created_at": created,
                               "metadata": {"usage": usage(), "retriever_resources": cited()}})]  # fmt: skip

            return await self._stream(run, send, frames, finish)

    async def completion_messages(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        self._app(ctx)
        raise RequestError("App unavailable, please check your app configurations.", code="app_unavailable")

    async def stop_task(self, ctx: RequestContext, raw: bytes, send: Send, *, param: str) -> int:
        task_id = param
        app = self._app(ctx)
        request: _StopRequest = _decode(raw, _StopRequest)
        self.apps.stop_task(app.name, task_id, request.user)  # unknown or finished tasks: still success
        await send_body(send, 200, _encode({"result": "success"}))
        return 200

    async def parameters(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._app(ctx)
        spec = app.workflow.spec
        features = spec.features
        form = []
        for var in getattr(app.workflow.start, "variables", []):
            entry: dict[str, Any] = {"label": var.label or var.variable, "variable": var.variable,
                                     "required": var.required, "default": var.default or ""}  # fmt: skip
            if var.max_length is not None:
                entry["max_length"] = var.max_length
            if var.type == "select":
                entry["options"] = var.options
            form.append({var.type: entry})
        off = {"enabled": False}
        body = {
            "opening_statement": features.get("opening_statement", ""),
            "suggested_questions": features.get("suggested_questions", []),
            "suggested_questions_after_answer": features.get("suggested_questions_after_answer", off),
            "speech_to_text": features.get("speech_to_text", off),
            "text_to_speech": features.get("text_to_speech", off),
            "retriever_resource": features.get("retriever_resource", off),
            "annotation_reply": features.get("annotation_reply", off),
            "more_like_this": features.get("more_like_this", off),
            "sensitive_word_avoidance": features.get("sensitive_word_avoidance", off),
            "user_input_form": form,
            "file_upload": features.get("file_upload", {"image": {"enabled": False}}),
            "system_parameters": {"file_size_limit": 15, "image_file_size_limit": 10, "audio_file_size_limit": 50,
                                  "video_file_size_limit": 100, "workflow_file_upload_limit": 10},
        }  # fmt: skip
        await send_body(send, 200, _encode(body))
        return 200

    async def info(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._app(ctx)
        spec = app.workflow.spec
        body = {"name": spec.name or app.name, "description": spec.description, "tags": [], "mode": app.mode,
                "author_name": ""}  # fmt: skip
        await send_body(send, 200, _encode(body))
        return 200

    # -- streaming --------------------------------------------------------------------------------

    async def _stream(
        self,
        run: WorkflowRun,
        send: Send,
        frames: Callable[[Event], list[bytes]],
        finish: Callable[[WorkflowFinished], Awaitable[list[bytes]]] | None = None,
    ) -> int:
        """Relay events as SSE with pings in the gaps; the run stops if the client goes away."""
        import asyncio

        await start_stream(send)
        while True:
            try:
                async with asyncio.timeout(self.ping_interval):
                    event = await anext(run)
            except TimeoutError:
                await send({"type": "http.response.body", "body": _PING, "more_body": True})
                continue
            except StopAsyncIteration:
                break
            out = frames(event)
            if finish is not None and isinstance(event, WorkflowFinished):
                out += await finish(event)
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return 200


def _frame(event: Event, envelope: dict[str, Any]) -> bytes:
    return b"data: " + _encode({"event": event.kind, **envelope, "data": event}) + b"\n\n"


def _usage(tokens: dict[str, int], latency: float) -> dict[str, Any]:
    """Dify's usage object (clients validate every field); prices are not tracked here."""
    return {
        "prompt_tokens": tokens.get("prompt_tokens", 0), "completion_tokens": tokens.get("completion_tokens", 0),
        "total_tokens": tokens.get("total_tokens", 0), "prompt_unit_price": "0", "prompt_price_unit": "0",
        "prompt_price": "0", "completion_unit_price": "0", "completion_price_unit": "0", "completion_price": "0",
        "total_price": "0", "currency": "USD", "latency": round(latency, 6),
    }  # fmt: skip


def _citations(features: dict[str, Any], result: RunResult | None) -> list[dict[str, Any]]:
    """What ``message_end`` cites: the run's retrieved knowledge, unless the app's
    ``retriever_resource`` feature is off (absent counts as on)."""
    feature = features.get("retriever_resource")
    if result is None or (isinstance(feature, dict) and not feature.get("enabled", True)):
        return []
    return result.retriever_resources


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"
