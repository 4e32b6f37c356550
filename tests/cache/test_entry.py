"""Entries: stored as bytes, served as a completion or as a stream, whichever shape was asked."""

from __future__ import annotations

from cache.helpers import chunks, completion, text_of
from tidegate.cache import Entry
from tidegate.cache.entry import chunks_to_completion, completion_to_chunks, stream_is_complete


def test_completion_round_trips_through_chunks() -> None:
    original = completion("Go to Orders, then Refund.")
    replay = completion_to_chunks(original)
    assert replay is not None
    assert text_of(replay) == "Go to Orders, then Refund."
    assert replay[0]["choices"][0]["delta"]["role"] == "assistant"
    assert replay[-1] == {**{k: replay[-1][k] for k in ("id", "object", "created", "model")}, "choices": [], "usage": original["usage"]}
    back = chunks_to_completion(replay)
    assert back is not None
    assert back["choices"][0]["message"]["content"] == original["choices"][0]["message"]["content"]
    assert back["choices"][0]["finish_reason"] == "stop"
    assert back["usage"] == original["usage"]


def test_tool_calls_survive_both_ways() -> None:
    response = completion("")
    response["choices"][0]["message"] = {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "order_status", "arguments": '{"id": 7}'}}],
    }  # fmt: skip
    response["choices"][0]["finish_reason"] = "tool_calls"
    stream = completion_to_chunks(response)
    assert stream is not None
    back = chunks_to_completion(stream)
    assert back is not None
    assert back["choices"][0]["message"]["tool_calls"] == response["choices"][0]["message"]["tool_calls"]


def test_streamed_tool_call_fragments_merge() -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    parts = [
        {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q":'}},
        {"index": 0, "function": {"arguments": ' "x"}'}},
    ]
    stream = [{**head, "choices": [{"index": 0, "delta": {"tool_calls": [p]}, "finish_reason": None}]} for p in parts]
    stream.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    back = chunks_to_completion(stream)
    assert back is not None
    call = back["choices"][0]["message"]["tool_calls"][0]
    assert call == {"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}


def test_logprobs_are_not_converted() -> None:
    response = completion("x")
    response["choices"][0]["logprobs"] = {"content": []}
    assert completion_to_chunks(response) is None
    entry = Entry.from_completion(response, created=0, expires=1)
    assert entry.chunks(include_usage=False) is None
    assert entry.completion() == response


def test_stream_completeness() -> None:
    assert stream_is_complete(chunks("a b"))
    assert not stream_is_complete(chunks("a b", finish=None))  # cut off
    assert not stream_is_complete(chunks("a b", finish="content_filter"))
    assert not stream_is_complete([])


def test_usage_chunk_only_when_asked() -> None:
    entry = Entry.from_chunks(chunks("a b", usage=True), created=0, expires=1)
    with_usage = entry.chunks(include_usage=True)
    without = entry.chunks(include_usage=False)
    assert with_usage is not None and without is not None
    assert len(with_usage) == len(without) + 1
    assert all("usage" not in c for c in without)
    assert text_of(without) == "a b"


def test_entries_hand_out_fresh_objects() -> None:
    entry = Entry.from_completion(completion("same"), created=0, expires=1)
    first = entry.completion()
    assert first is not None
    first["choices"][0]["message"]["content"] = "mutated by a caller"
    again = entry.completion()
    assert again is not None and again["choices"][0]["message"]["content"] == "same"
    assert entry.size > len(entry.payload)
