"""Conversation memory: isolation between tenants and users, windows, TTL, bounds, Dify paging."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidegate.config.agents import SessionsConfig
from tidegate.errors import NotFoundError, RequestError
from tidegate.sessions import Conversation, MemorySessionStore, Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock | None = None, **config: Any) -> Sessions:
    return Sessions(SessionsConfig(**config), clock=clock or Clock())


async def converse(store: Sessions, tenant: str | None, user: str, *queries: str, cid: str | None = None) -> Conversation:
    conversation = await store.open(tenant, user, cid)
    for query in queries:
        await store.append(conversation, query=query, answer=f"answer to {query}")
    return conversation


# -- isolation ----------------------------------------------------------------------------------


async def test_cross_user_session_isolation_through_the_agent_runtime(make_runtime: Any) -> None:
    agent = {"model": "light", "tools": ["order_status"]}
    async with make_runtime(agents={"helper": agent}) as runtime:
        mine = await runtime.run("helper", 'call:order_status({"order_id": 1})', tenant="acme", user="ann")
        cid = mine.conversation_id
        assert cid is not None
        # Same id, another user of the same tenant, or the same user name in another tenant: 404.
        for tenant, user in (("acme", "bob"), ("other", "ann"), (None, "ann")):
            with pytest.raises(NotFoundError, match="Conversation Not Exists"):
                await runtime.run("helper", "hello", session=cid, tenant=tenant, user=user)
            with pytest.raises(NotFoundError):
                await runtime.sessions.messages(tenant, user, cid)
            with pytest.raises(NotFoundError):
                await runtime.sessions.delete(tenant, user, cid)
            with pytest.raises(NotFoundError):
                await runtime.sessions.rename(tenant, user, cid, "mine now")
            listed, _ = await runtime.sessions.list_conversations(tenant, user)
            assert listed == []
        again = await runtime.run("helper", "and now?", session=cid, tenant="acme", user="ann")
        turns, has_more = await runtime.sessions.messages("acme", "ann", cid)
    assert again.conversation_id == cid
    assert [t.query for t in turns] == ['call:order_status({"order_id": 1})', "and now?"]
    assert turns[0].answer == mine.answer and not has_more


async def test_each_user_gets_their_own_memory_of_the_same_agent(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": {"model": "light"}}) as runtime:
        a = await runtime.run("helper", "first from ann", user="ann")
        b = await runtime.run("helper", "first from bob", user="bob")
        await runtime.run("helper", "second from ann", user="ann", session=a.conversation_id)
        ann = runtime.sessions.window(await runtime.sessions.get(None, "ann", a.conversation_id or ""))
        bob = runtime.sessions.window(await runtime.sessions.get(None, "bob", b.conversation_id or ""))
    assert [m["content"] for m in ann if m["role"] == "user"] == ["first from ann", "second from ann"]
    assert [m["content"] for m in bob if m["role"] == "user"] == ["first from bob"]


# -- windows ------------------------------------------------------------------------------------


async def test_memory_window_trims_by_turns(make_runtime: Any) -> None:
    async with make_runtime(agents={"helper": {"model": "light"}}, sessions={"window_turns": 2}) as runtime:
        first = await runtime.run("helper", "one", user="u")
        for query in ("two", "three", "four"):
            await runtime.run("helper", query, user="u", session=first.conversation_id)
        conversation = await runtime.sessions.get(None, "u", first.conversation_id or "")
        window = runtime.sessions.window(conversation)
    assert len(conversation.turns) == 4  # everything is kept; the window only limits what a turn sees
    assert [m["content"] for m in window if m["role"] == "user"] == ["three", "four"]
    assert [m["role"] for m in window] == ["user", "assistant", "user", "assistant"]


async def test_memory_window_trims_by_tokens() -> None:
    store = sessions(window_turns=None, window_tokens=70)
    conversation = await converse(store, None, "u", "a" * 40, "b" * 40, "c" * 40)
    # Each turn is 10 (query) + 13 ("answer to " + query) + 8 tokens = 31: two fit in 70, three do not.
    assert [t.tokens for t in conversation.turns] == [31, 31, 31]
    assert [m["content"] for m in store.window(conversation) if m["role"] == "user"] == ["b" * 40, "c" * 40]
    assert sessions(window_turns=0).window(conversation) == []


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    turns=st.none() | st.integers(min_value=0, max_value=6),
    tokens=st.none() | st.integers(min_value=0, max_value=300),
)
async def test_window_is_the_longest_suffix_within_both_limits(sizes: list[int], turns: int | None, tokens: int | None) -> None:
    store = sessions(window_turns=turns, window_tokens=tokens, max_turns=100)
    conversation = await converse(store, "t", "u", *("x" * size for size in sizes))
    window = store.window(conversation)
    kept = conversation.turns[len(conversation.turns) - len(window) // 2 :]
    assert [m["content"] for m in window if m["role"] == "user"] == [t.query for t in kept]
    assert turns is None or len(kept) <= turns
    assert tokens is None or sum(t.tokens for t in kept) <= tokens
    if len(kept) < len(conversation.turns):  # one more turn would break a limit
        older = conversation.turns[len(conversation.turns) - len(kept) - 1]
        over_turns = turns is not None and len(kept) + 1 > turns
        over_tokens = tokens is not None and sum(t.tokens for t in kept) + older.tokens > tokens
        assert over_turns or over_tokens


async def test_max_turns_drops_the_oldest_turns() -> None:
    store = sessions(max_turns=3)
    conversation = await converse(store, None, "u", *map(str, range(5)))
    assert [t.query for t in conversation.turns] == ["2", "3", "4"]


# -- TTL and global bound -----------------------------------------------------------------------


async def test_conversations_expire_ttl_after_their_last_turn() -> None:
    clock = Clock()
    store = sessions(clock, ttl=60)
    old = await converse(store, None, "u", "hi")
    clock.now += 30
    fresh = await converse(store, None, "u", "hello")
    clock.now += 31  # old: 61 s idle, fresh: 31 s
    with pytest.raises(NotFoundError):
        await store.get(None, "u", old.id)
    assert (await store.get(None, "u", fresh.id)).id == fresh.id
    await store.append(fresh, query="still here", answer="yes")  # activity renews the TTL
    clock.now += 59
    assert (await store.get(None, "u", fresh.id)).turns[-1].query == "still here"


async def test_global_bound_evicts_the_least_recently_active() -> None:
    clock = Clock()
    store = sessions(clock, max_sessions=3)
    a, b, c = [await converse(store, "t", user, "hi") for user in ("a", "b", "c")]
    clock.now += 1
    await store.append(a, query="again", answer="ok")  # a is now the most recent
    await converse(store, "t", "d", "hi")
    assert isinstance(store.store, MemorySessionStore) and len(store.store) == 3
    with pytest.raises(NotFoundError):
        await store.get("t", "b", b.id)
    for conversation in (a, c):
        await store.get("t", conversation.user, conversation.id)


async def test_a_new_conversation_is_stored_only_with_its_first_turn() -> None:
    store = sessions()
    conversation = await store.open("t", "u")
    assert (await store.list_conversations("t", "u"))[0] == []
    await store.append(conversation, query="hi", answer="hello")
    assert [c.id for c in (await store.list_conversations("t", "u"))[0]] == [conversation.id]


# -- the Dify conversation API ------------------------------------------------------------------


async def test_listing_pages_and_sorts_like_dify() -> None:
    clock = Clock()
    store = sessions(clock)
    made = []
    for index in range(5):
        clock.now += 1
        made.append(await converse(store, "t", "u", f"q{index}"))
    clock.now += 1
    await store.append(made[1], query="bump", answer="ok")
    page, more = await store.list_conversations("t", "u", limit=2)
    assert [c.id for c in page] == [made[1].id, made[4].id] and more
    page, more = await store.list_conversations("t", "u", limit=2, last_id=page[-1].id)
    assert [c.id for c in page] == [made[3].id, made[2].id] and more
    page, more = await store.list_conversations("t", "u", limit=2, last_id=page[-1].id)
    assert [c.id for c in page] == [made[0].id] and not more
    oldest, _ = await store.list_conversations("t", "u", sort_by="created_at", limit=1)
    assert oldest[0].id == made[0].id
    info = oldest[0].info()
    assert set(info) == {"id", "name", "inputs", "status", "introduction", "created_at", "updated_at"}
    assert info["name"] == "q0"
    with pytest.raises(NotFoundError, match="Last Conversation Not Exists"):
        await store.list_conversations("t", "u", last_id="nope")
    with pytest.raises(RequestError, match="sort_by"):
        await store.list_conversations("t", "u", sort_by="name")  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="limit"):
        await store.list_conversations("t", "u", limit=0)


async def test_messages_page_backwards_from_first_id() -> None:
    store = sessions()
    conversation = await converse(store, "t", "u", *(f"m{i}" for i in range(5)))
    page, more = await store.messages("t", "u", conversation.id, limit=2)
    assert [t.query for t in page] == ["m3", "m4"] and more
    page, more = await store.messages("t", "u", conversation.id, limit=2, first_id=page[0].id)
    assert [t.query for t in page] == ["m1", "m2"] and more
    page, more = await store.messages("t", "u", conversation.id, limit=2, first_id=page[0].id)
    assert [t.query for t in page] == ["m0"] and not more
    with pytest.raises(NotFoundError, match="First Message Not Exists"):
        await store.messages("t", "u", conversation.id, first_id="nope")


async def test_rename_delete_and_variables() -> None:
    store = sessions()
    conversation = await converse(store, "t", "u", "Where is my parcel from last week, please?", "thanks")
    assert conversation.name == "Where is my parcel from last week, plea…"
    renamed = await store.rename("t", "u", conversation.id, "  Parcel  ")
    assert renamed.name == "Parcel"
    auto = await store.rename("t", "u", conversation.id, auto_generate=True)
    assert auto.name.startswith("Where is my parcel")
    with pytest.raises(RequestError, match="non-empty `name`"):
        await store.rename("t", "u", conversation.id, " ")
    updated = await store.set_variables("t", "u", conversation.id, {"language": "en"})
    assert (await store.get("t", "u", conversation.id)).variables == updated.variables == {"language": "en"}
    await store.delete("t", "u", conversation.id)
    with pytest.raises(NotFoundError):
        await store.delete("t", "u", conversation.id)
    with pytest.raises(NotFoundError):
        await store.get("t", "u", conversation.id)
