"""Conversation memory: what an agent or chatflow remembers between turns, per tenant and user.

Every conversation is keyed by ``(tenant, user, conversation id)`` and every lookup takes all
three, so one tenant's or user's conversation is never visible to another even if they guess its
id: a foreign id answers exactly like a missing one (404), which reveals nothing.

Policy and storage are separate: :class:`Sessions` decides what a turn sees (a window by turns
and/or estimated tokens), pages listings the way Dify's API does and names conversations;
a :class:`SessionStore` only keeps conversations, bounded by a TTL after the last activity and a
global count (least recently active first out). :class:`MemorySessionStore` is the in-process
store; a shared one (Redis) implements the same five methods.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec

from .admission.estimate import estimate_text_tokens
from .config.agents import SessionsConfig
from .errors import NotFoundError, RequestError

__all__ = [
    "Conversation",
    "MemorySessionStore",
    "SessionStore",
    "Sessions",
    "Turn",
]

SortBy = Literal["created_at", "-created_at", "updated_at", "-updated_at"]
_NAME_LENGTH = 40


class Turn(msgspec.Struct, kw_only=True):
    """One exchange: the user's query and the answer, plus what the run recorded about it."""

    id: str
    query: str
    answer: str
    created_at: float
    status: str = "succeeded"
    """The run's status (``succeeded``, or the cap that ended it: ``max_steps``…)."""
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    tokens: int = 0
    """Estimated tokens of query + answer, for the token window."""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Conversation(msgspec.Struct, kw_only=True):
    id: str
    tenant: str
    user: str
    created_at: float
    updated_at: float
    name: str = ""
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    turns: list[Turn] = msgspec.field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """The conversation as Dify's ``GET /conversations`` lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "inputs": self.inputs,
            "status": "normal",
            "introduction": "",
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
        }


class SessionStore(Protocol):
    """Keeps conversations; every method is scoped by tenant and user."""

    async def get(self, tenant: str, user: str, conversation_id: str) -> Conversation | None: ...

    async def save(self, conversation: Conversation) -> None: ...

    async def delete(self, tenant: str, user: str, conversation_id: str) -> bool: ...

    async def list(self, tenant: str, user: str) -> list[Conversation]: ...

    async def close(self) -> None: ...


Key = tuple[str, str, str]


class MemorySessionStore:
    """In-process store: an LRU ordered by last activity, so both the TTL sweep and the global
    bound only ever look at the front (O(1) per saved conversation)."""

    def __init__(self, *, ttl: float, max_sessions: int, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._clock = clock
        self._items: OrderedDict[Key, Conversation] = OrderedDict()
        self._owners: dict[tuple[str, str], dict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, tenant: str, user: str, conversation_id: str) -> Conversation | None:
        key = (tenant, user, conversation_id)
        conversation = self._items.get(key)
        if conversation is not None and self._expired(conversation):
            self._drop(key)
            return None
        return conversation

    async def save(self, conversation: Conversation) -> None:
        key = (conversation.tenant, conversation.user, conversation.id)
        self._items[key] = conversation
        self._items.move_to_end(key)
        self._owners.setdefault(key[:2], {})[conversation.id] = None
        self._sweep()

    async def delete(self, tenant: str, user: str, conversation_id: str) -> bool:
        key = (tenant, user, conversation_id)
        if key not in self._items:
            return False
        self._drop(key)
        return True

    async def list(self, tenant: str, user: str) -> list[Conversation]:
        ids = self._owners.get((tenant, user), {})
        found: list[Conversation] = []
        for conversation_id in list(ids):
            conversation = await self.get(tenant, user, conversation_id)
            if conversation is not None:
                found.append(conversation)
        return found

    async def close(self) -> None:
        self._items.clear()
        self._owners.clear()

    def _expired(self, conversation: Conversation) -> bool:
        return self._clock() - conversation.updated_at >= self.ttl

    def _sweep(self) -> None:
        while self._items:
            key, oldest = next(iter(self._items.items()))
            if len(self._items) > self.max_sessions or self._expired(oldest):
                self._drop(key)
            else:
                break

    def _drop(self, key: Key) -> None:
        self._items.pop(key, None)
        owned = self._owners.get(key[:2])
        if owned is not None:
            owned.pop(key[2], None)
            if not owned:
                del self._owners[key[:2]]


def _not_found() -> NotFoundError:
    return NotFoundError("Conversation Not Exists.", code="not_found", param="conversation_id")


class Sessions:
    """Conversation memory policy over a store; what surfaces and the agent runtime call."""

    def __init__(
        self,
        config: SessionsConfig | None = None,
        store: SessionStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or SessionsConfig()
        self._clock = clock
        self.store: SessionStore = store or MemorySessionStore(
            ttl=float(self.config.ttl), max_sessions=self.config.max_sessions, clock=clock
        )

    async def close(self) -> None:
        await self.store.close()

    # -- turns -------------------------------------------------------------------------------

    async def open(
        self,
        tenant: str | None,
        user: str | None,
        conversation_id: str | None = None,
        *,
        inputs: dict[str, Any] | None = None,
    ) -> Conversation:
        """The caller's conversation, or a new one (not stored until its first turn)."""
        if conversation_id:
            return await self.get(tenant, user, conversation_id)
        now = self._clock()
        return Conversation(id=str(uuid.uuid4()), tenant=tenant or "", user=user or "",
                            created_at=now, updated_at=now, inputs=dict(inputs or {}))  # fmt: skip

    async def get(self, tenant: str | None, user: str | None, conversation_id: str) -> Conversation:
        conversation = await self.store.get(tenant or "", user or "", conversation_id)
        if conversation is None:
            raise _not_found()
        return conversation

    def window(self, conversation: Conversation) -> list[dict[str, Any]]:
        """Earlier turns a new turn sees, as chat messages (oldest first)."""
        max_turns = self.config.window_turns
        max_tokens = self.config.window_tokens
        chosen: list[Turn] = []
        spent = 0
        for turn in reversed(conversation.turns):
            if max_turns is not None and len(chosen) >= max_turns:
                break
            if max_tokens is not None and spent + turn.tokens > max_tokens:
                break
            chosen.append(turn)
            spent += turn.tokens
        messages: list[dict[str, Any]] = []
        for turn in reversed(chosen):
            messages.append({"role": "user", "content": turn.query})
            messages.append({"role": "assistant", "content": turn.answer})
        return messages

    async def append(
        self,
        conversation: Conversation,
        *,
        query: str,
        answer: str,
        status: str = "succeeded",
        inputs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        turn_id: str | None = None,
    ) -> Turn:
        now = self._clock()
        turn = Turn(
            id=turn_id or str(uuid.uuid4()), query=query, answer=answer, created_at=now, status=status,
            inputs=dict(inputs or {}), tokens=estimate_text_tokens(query) + estimate_text_tokens(answer) + 8,
            metadata=dict(metadata or {}),
        )  # fmt: skip
        conversation.turns.append(turn)
        excess = len(conversation.turns) - self.config.max_turns
        if excess > 0:
            del conversation.turns[:excess]
        if not conversation.name:
            conversation.name = _auto_name(query)
        conversation.updated_at = now
        await self.store.save(conversation)
        return turn

    # -- the Dify conversation API -----------------------------------------------------------

    async def list_conversations(
        self,
        tenant: str | None,
        user: str | None,
        *,
        last_id: str | None = None,
        limit: int = 20,
        sort_by: SortBy = "-updated_at",
    ) -> tuple[list[Conversation], bool]:
        """A page of the user's conversations after ``last_id``, and whether more follow."""
        _check_limit(limit)
        field = sort_by.lstrip("-")
        if field not in ("created_at", "updated_at"):
            raise RequestError(
                f"Expected `sort_by` to be one of created_at, -created_at, updated_at, -updated_at, got `{sort_by}`",
                param="sort_by",
            )
        items = await self.store.list(tenant or "", user or "")
        items.sort(key=lambda c: (getattr(c, field), c.id), reverse=sort_by.startswith("-"))
        if last_id:
            index = next((i for i, c in enumerate(items) if c.id == last_id), None)
            if index is None:
                raise NotFoundError("Last Conversation Not Exists.", code="not_found", param="last_id")
            items = items[index + 1 :]
        return items[:limit], len(items) > limit

    async def messages(
        self,
        tenant: str | None,
        user: str | None,
        conversation_id: str,
        *,
        first_id: str | None = None,
        limit: int = 20,
    ) -> tuple[list[Turn], bool]:
        """The page of turns just before ``first_id`` (the latest ones without it), oldest first,
        and whether older turns remain: how a chat UI scrolls back."""
        _check_limit(limit)
        turns = (await self.get(tenant, user, conversation_id)).turns
        if first_id:
            index = next((i for i, t in enumerate(turns) if t.id == first_id), None)
            if index is None:
                raise NotFoundError("First Message Not Exists.", code="not_found", param="first_id")
            turns = turns[:index]
        return turns[-limit:], len(turns) > limit

    async def delete(self, tenant: str | None, user: str | None, conversation_id: str) -> None:
        if not await self.store.delete(tenant or "", user or "", conversation_id):
            raise _not_found()

    async def rename(
        self,
        tenant: str | None,
        user: str | None,
        conversation_id: str,
        name: str | None = None,
        *,
        auto_generate: bool = False,
    ) -> Conversation:
        """Set the name, or (``auto_generate``) derive it from the first query."""
        conversation = await self.get(tenant, user, conversation_id)
        if auto_generate:
            first = conversation.turns[0].query if conversation.turns else ""
            name = _auto_name(first) or conversation.name
        if not name or not name.strip():
            raise RequestError("Expected a non-empty `name` (or `auto_generate: true`)", param="name")
        conversation.name = name.strip()
        conversation.updated_at = self._clock()
        await self.store.save(conversation)
        return conversation

    async def set_variables(
        self, tenant: str | None, user: str | None, conversation_id: str, variables: dict[str, Any]
    ) -> Conversation:
        conversation = await self.get(tenant, user, conversation_id)
        conversation.variables.update(variables)
        await self.store.save(conversation)
        return conversation


def _auto_name(query: str) -> str:
    text = " ".join(query.split())
    return text if len(text) <= _NAME_LENGTH else text[: _NAME_LENGTH - 1].rstrip() + "…"


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 100:
        raise RequestError(f"Expected `limit` between 1 and 100, got `{limit}`", param="limit")
