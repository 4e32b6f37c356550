"""Dify's conversation endpoints: list conversations and messages, rename, delete, variables.

They read the same session store the chat endpoint writes, keyed by (app, user, conversation id):
the Bearer key selects the app (the tenant), ``user`` comes from the query string (GET) or the JSON
body (POST/DELETE) as in Dify, and another user's conversation answers exactly like a missing one
(404 ``not_found``, "Conversation Not Exists."), so ids cannot be probed. A request without
``user`` acts as Dify's ``DEFAULT-USER``. Only chat apps (``advanced-chat``) have conversations;
others get Dify's ``not_chat_app``.

Response shapes follow Dify's service API: ``{limit, has_more, data}`` pages, conversations as
``{id, name, inputs, status, introduction, created_at, updated_at}``, messages oldest first with
their ``retriever_resources``, 204 for a delete. Conversation variables are listed from the app's
DSL declarations with the conversation's current values (non-text values as JSON text, since Dify
declares ``value`` a string); their ids are derived from app and name, stable across restarts.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from ..asgi.http import send_body
from ..errors import NotFoundError, RequestError
from .base import Route, Send

if TYPE_CHECKING:
    from ..context import RequestContext
    from ..engine.apps import WorkflowApp
    from ..sessions import Turn
    from .dify import DifySurface

__all__ = ["DifyConversations"]

_encode = msgspec.json.Encoder().encode
_NOT_CHAT = "Please check if your app mode matches the right API route."
DEFAULT_USER = "DEFAULT-USER"
"""Who a request without ``user`` acts as (Dify's default end user)."""


class _UserBody(msgspec.Struct):
    user: str | None = None


class _RenameBody(msgspec.Struct):
    name: str | None = None
    auto_generate: bool = False
    user: str | None = None


class DifyConversations:
    """The endpoints, bound to the Dify surface for its app-key auth and session store."""

    def __init__(self, surface: DifySurface) -> None:
        self.surface = surface

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/conversations", self.list_conversations, surface=self.surface, auth=False),
            Route("GET", "/v1/messages", self.list_messages, surface=self.surface, auth=False),
        ]

    def patterns(self) -> Sequence[tuple[str, re.Pattern[str], Any]]:
        return [
            ("DELETE", re.compile(r"^/v1/conversations/([^/]+)$"), self.delete),
            ("POST", re.compile(r"^/v1/conversations/([^/]+)/name$"), self.rename),
            ("GET", re.compile(r"^/v1/conversations/([^/]+)/variables$"), self.variables),
        ]

    # -- endpoints --------------------------------------------------------------------------------

    async def list_conversations(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._chat_app(ctx)
        params = _params(ctx)
        limit = _limit(params)
        if params.get("pinned") == "true":  # nothing is ever pinned here
            await send_body(send, 200, _encode({"limit": limit, "has_more": False, "data": []}))
            return 200
        sort_by: Any = params.get("sort_by") or "-updated_at"
        items, has_more = await self.surface.apps.sessions.list_conversations(
            app.name, _user(params.get("user")), last_id=params.get("last_id") or None, limit=limit, sort_by=sort_by
        )  # fmt: skip
        body = {"limit": limit, "has_more": has_more, "data": [c.info() for c in items]}
        await send_body(send, 200, _encode(body))
        return 200

    async def list_messages(self, ctx: RequestContext, raw: bytes, send: Send) -> int:
        app = self._chat_app(ctx)
        params = _params(ctx)
        conversation_id = params.get("conversation_id")
        if not conversation_id:
            raise RequestError("Arg conversation_id must be provided.", code="invalid_param", param="conversation_id")
        limit = _limit(params)
        user = _user(params.get("user"))
        sessions = self.surface.apps.sessions
        conversation = await sessions.get(app.name, user, conversation_id)
        turns, has_more = await sessions.messages(app.name, user, conversation_id,
                                                  first_id=params.get("first_id") or None, limit=limit)  # fmt: skip
        parents = {turn.id: before.id for before, turn in pairwise(conversation.turns)}
        data = [_message(turn, conversation_id, parents.get(turn.id)) for turn in turns]
        await send_body(send, 200, _encode({"limit": limit, "has_more": has_more, "data": data}))
        return 200

    async def delete(self, ctx: RequestContext, raw: bytes, send: Send, *, param: str) -> int:
        app = self._chat_app(ctx)
        body: _UserBody = _body(raw, _UserBody)
        user = _user(body.user or _params(ctx).get("user"))
        await self.surface.apps.sessions.delete(app.name, user, param)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return 204

    async def rename(self, ctx: RequestContext, raw: bytes, send: Send, *, param: str) -> int:
        app = self._chat_app(ctx)
        body: _RenameBody = _body(raw, _RenameBody)
        conversation = await self.surface.apps.sessions.rename(
            app.name, _user(body.user), param, body.name, auto_generate=body.auto_generate
        )
        await send_body(send, 200, _encode(conversation.info()))
        return 200

    async def variables(self, ctx: RequestContext, raw: bytes, send: Send, *, param: str) -> int:
        app = self._chat_app(ctx)
        params = _params(ctx)
        limit = _limit(params)
        conversation = await self.surface.apps.sessions.get(app.name, _user(params.get("user")), param)
        workflow = app.workflow
        items = []
        for declared in workflow.spec.conversation:
            value = conversation.variables.get(declared.name, workflow.conversation_defaults.get(declared.name))
            items.append({
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tidegate:{app.name}/{declared.name}")),
                "name": declared.name, "value_type": declared.value_type,
                "value": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
                "description": declared.description, "created_at": int(conversation.created_at),
                "updated_at": int(conversation.updated_at),
            })  # fmt: skip
        if name := params.get("variable_name"):
            items = [item for item in items if item["name"] == name]
        if last_id := params.get("last_id"):
            index = next((i for i, item in enumerate(items) if item["id"] == last_id), None)
            if index is None:
                raise NotFoundError("Last Variable Not Exists.", code="not_found", param="last_id")
            items = items[index + 1 :]
        body = {"limit": limit, "has_more": len(items) > limit, "data": items[:limit]}
        await send_body(send, 200, _encode(body))
        return 200

    # -- helpers ----------------------------------------------------------------------------------

    def _chat_app(self, ctx: RequestContext) -> WorkflowApp:
        app = self.surface._app(ctx)
        if app.mode != "advanced-chat":
            raise RequestError(_NOT_CHAT, code="not_chat_app")
        return app


def _params(ctx: RequestContext) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(ctx.query, keep_blank_values=True).items()}


def _user(user: str | None) -> str:
    return user or DEFAULT_USER


def _limit(params: dict[str, str]) -> int:
    text = params.get("limit") or "20"
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise RequestError(f"Expected `limit` between 1 and 100, got `{text}`", code="invalid_param", param="limit")
    return int(text)


def _body(raw: bytes, tp: type[Any]) -> Any:
    if not raw.strip():
        return tp()
    try:
        return msgspec.json.decode(raw, type=tp)
    except msgspec.ValidationError as exc:
        raise RequestError(str(exc), code="invalid_param") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The request body is not valid JSON ({exc})", code="invalid_param") from None


def _message(turn: Turn, conversation_id: str, parent: str | None) -> dict[str, Any]:
    """One turn as Dify's message list item."""
    failed = turn.status in ("failed", "error")
    return {
        "id": turn.id, "conversation_id": conversation_id, "parent_message_id": parent, "inputs": turn.inputs,
        "query": turn.query, "answer": turn.answer, "message_files": [], "feedback": None,
        "retriever_resources": turn.metadata.get("retriever_resources") or [], "agent_thoughts": [],
        "created_at": int(turn.created_at), "status": "error" if failed else "normal",
        "error": turn.status if failed else None,
    }  # fmt: skip
