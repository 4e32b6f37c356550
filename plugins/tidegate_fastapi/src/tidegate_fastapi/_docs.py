"""What FastAPI documents for each endpoint the gateway lists (``TidegateMiddleware.routes()``).

The gateway's own listing decides *which* endpoints exist (the Dify routes only when workflows are
configured, anything a later surface adds); this module only knows how to describe the ones it
recognises (schemas, summaries, error responses). An endpoint it does not know is still listed,
with a generic description, so the docs never miss a route the gateway serves.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from .dify_schemas import (
    AppInfo,
    AppParameters,
    ChatMessageRequest,
    ChatMessageResponse,
    Conversation,
    ConversationPage,
    DifyError,
    MessagePage,
    RenameRequest,
    StopRequest,
    StopResponse,
    UserBody,
    VariablePage,
    WorkflowRunRequest,
    WorkflowRunResponse,
)
from .schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingsRequest,
    ErrorEnvelope,
    Health,
    ModelList,
)

__all__ = ["EndpointDoc", "describe", "endpoint_function", "template"]


def _errors(model: type[BaseModel], pairs: list[tuple[int, str]]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": text} for status, text in pairs}


_OPENAI_ERRORS = _errors(ErrorEnvelope, [
    (400, "Invalid request (bad JSON, missing fields)"),
    (401, "Missing or wrong API key"),
    (404, "Unknown model"),
    (413, "Request body too large"),
    (429, "Rate limited (see Retry-After and RateLimit-* headers)"),
    (502, "The upstream failed"),
    (503, "Overloaded or shutting down (see Retry-After)"),
    (504, "The upstream timed out"),
])  # fmt: skip
_DIFY_ERRORS = _errors(DifyError, [
    (400, "Invalid parameters, or the app's mode does not match the route"),
    (401, "Missing or unknown app key"),
    (429, "Rate limited (see Retry-After and RateLimit-* headers)"),
    (503, "Overloaded or shutting down (see Retry-After)"),
])  # fmt: skip


def _sse(example: str, description: str) -> dict[int | str, dict[str, Any]]:
    content = {"text/event-stream": {"schema": {"type": "string"}, "example": example}}
    return {200: {"content": content, "description": description}}


@dataclass(frozen=True)
class EndpointDoc:
    """How one endpoint reads in the docs. ``name`` becomes the route name ``tidegate_<name>``."""

    name: str
    description: str
    body: type[BaseModel] | None = None
    response_model: Any = None
    responses: dict[int | str, dict[str, Any]] = field(default_factory=dict)
    response_class: type[Any] | None = None
    query: tuple[str, ...] = ()
    """Optional query parameters (strings); a trailing ``!`` marks a required one."""


_KNOWN: dict[tuple[str, str], EndpointDoc] = {
    ("POST", "/v1/chat/completions"): EndpointDoc(
        "chat_completions",
        'Create a chat completion (OpenAI-compatible); `"stream": true` answers with SSE.',
        ChatCompletionRequest, ChatCompletion,
        {**_sse('data: {"object": "chat.completion.chunk", ...}\n\ndata: [DONE]\n\n',
                "A completion, or SSE chunks when streaming"), **_OPENAI_ERRORS},
    ),
    ("POST", "/v1/embeddings"): EndpointDoc(
        "embeddings", "Create embeddings (OpenAI-compatible) with a configured embedder.",
        EmbeddingsRequest, EmbeddingList, dict(_OPENAI_ERRORS),
    ),
    ("GET", "/v1/models"): EndpointDoc(
        "models", "List the chat models this gateway serves (`auto` and tiers first).", None, ModelList,
        {401: _OPENAI_ERRORS[401]},
    ),
    ("GET", "/metrics"): EndpointDoc(
        "metrics", "Prometheus metrics of this gateway.", response_class=PlainTextResponse
    ),
    ("GET", "/healthz"): EndpointDoc(
        "healthz", "Liveness and lifecycle state of this gateway.", None, Health, {503: {"model": Health}}
    ),
    ("POST", "/v1/workflows/run"): EndpointDoc(
        "workflows_run", "Run a workflow app (Dify service API); the Bearer app key selects the app.",
        WorkflowRunRequest, WorkflowRunResponse,
        {**_sse('data: {"event": "workflow_started", ...}\n\ndata: {"event": "workflow_finished", ...}\n\n',
                "The run's result, or its events as SSE when streaming"), **_DIFY_ERRORS},
    ),
    ("POST", "/v1/chat-messages"): EndpointDoc(
        "chat_messages", "Send a chat message to a chatflow app (Dify service API).",
        ChatMessageRequest, ChatMessageResponse,
        {**_sse('data: {"event": "message", "answer": "Hel", ...}\n\ndata: {"event": "message_end", ...}\n\n',
                "The answer, or message events as SSE when streaming"), **_DIFY_ERRORS},
    ),
    ("POST", "/v1/completion-messages"): EndpointDoc(
        "completion_messages", "Dify text-generator apps are not served: answers `app_unavailable`.",
        None, None, {400: _DIFY_ERRORS[400], 401: _DIFY_ERRORS[401]},
    ),
    ("GET", "/v1/parameters"): EndpointDoc(
        "parameters", "The app's input form and features (Dify service API).", None, AppParameters,
        {401: _DIFY_ERRORS[401]},
    ),
    ("GET", "/v1/info"): EndpointDoc(
        "info", "The app's name, description and mode (Dify service API).", None, AppInfo,
        {401: _DIFY_ERRORS[401]},
    ),
    ("GET", "/v1/conversations"): EndpointDoc(
        "conversations", "A user's conversations with a chatflow app, newest first (Dify service API).",
        None, ConversationPage, {400: _DIFY_ERRORS[400], 401: _DIFY_ERRORS[401]},
        query=("user", "last_id", "limit", "sort_by", "pinned"),
    ),
    ("GET", "/v1/messages"): EndpointDoc(
        "messages", "A conversation's messages, oldest first (Dify service API).", None, MessagePage,
        {400: _DIFY_ERRORS[400], 401: _DIFY_ERRORS[401], 404: {"model": DifyError}},
        query=("conversation_id!", "user", "first_id", "limit"),
    ),
    ("DELETE", "/v1/conversations/{conversation_id}"): EndpointDoc(
        "conversation_delete", "Delete a conversation (Dify service API); answers 204.", UserBody, None,
        {401: _DIFY_ERRORS[401], 404: {"model": DifyError}},
    ),
    ("POST", "/v1/conversations/{conversation_id}/name"): EndpointDoc(
        "conversation_rename", "Rename a conversation, or name it from its first message.", RenameRequest,
        Conversation, {401: _DIFY_ERRORS[401], 404: {"model": DifyError}},
    ),
    ("GET", "/v1/conversations/{conversation_id}/variables"): EndpointDoc(
        "conversation_variables", "A conversation's variables with their current values.", None,
        VariablePage, {401: _DIFY_ERRORS[401], 404: {"model": DifyError}}, query=("user", "last_id", "limit"),
    ),
    ("POST", "/v1/workflows/tasks/{task_id}/stop"): EndpointDoc(
        "workflows_stop", "Stop a streaming workflow run (Dify service API).", StopRequest, StopResponse,
        {401: _DIFY_ERRORS[401]},
    ),
    ("POST", "/v1/chat-messages/{task_id}/stop"): EndpointDoc(
        "chat_messages_stop", "Stop a streaming chat message (Dify service API).", StopRequest, StopResponse,
        {401: _DIFY_ERRORS[401]},
    ),
}  # fmt: skip

_GROUP = re.compile(r"\((?:\?P<(\w+)>)?[^()]*\)")
_PARAM = re.compile(r"\{[^{}]*\}")
_REGEX_SYNTAX = re.compile(r"[\\^$.*+?()\[\]|]")


def template(path: str) -> str | None:
    """A listed path as a path template: a regex's groups become ``{name}`` segments (``{param}``
    when unnamed). ``None`` for a regex that is more than literal segments and groups."""
    if not path.startswith("^"):
        return path
    body = path[1:].removesuffix("$")
    count = 0

    def name(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return "{" + (match.group(1) or ("param" if count == 1 else f"param{count}")) + "}"

    out = _GROUP.sub(name, body).replace("\\-", "-").replace("\\.", ".")
    return None if _REGEX_SYNTAX.search(_PARAM.sub("", out)) else out


def describe(method: str, path: str, surface: str) -> tuple[str, EndpointDoc]:
    """The documented path and doc of a listed endpoint (``path`` a template), known or generic;
    a known endpoint's parameter names win over ``{param}``."""
    shape = _PARAM.sub("{}", path)
    for (known_method, known_path), doc in _KNOWN.items():
        if known_method == method and _PARAM.sub("{}", known_path) == shape:
            return known_path, doc
    slug = re.sub(r"\W+", "_", _PARAM.sub("", path)).strip("_") or "root"
    return path, EndpointDoc(
        f"{surface}_{method.lower()}_{slug}", f"`{method} {path}` of tidegate's {surface} surface."
    )


def endpoint_function(doc: EndpointDoc, path: str) -> Callable[..., Any]:
    """A fresh function whose signature is what FastAPI documents; its body never runs."""

    async def endpoint(**kwargs: Any) -> Any:
        raise NotImplementedError  # SurfaceRoute answers with tidegate's surfaces instead

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(p[1:-1], keyword, annotation=str) for p in _PARAM.findall(path)]
    for name in doc.query:
        if name.endswith("!"):
            params.append(inspect.Parameter(name[:-1], keyword, annotation=str))
        else:
            params.append(inspect.Parameter(name, keyword, annotation=str | None, default=None))
    if doc.body is not None:
        params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=doc.body))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = endpoint.__qualname__ = doc.name
    endpoint.__doc__ = doc.description
    return endpoint
