"""The thread/loop bridge under the Flask adapter: bounded channel and the loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tidegate_flask import Channel, LoopThread
from tidegate_flask._channel import END

from tidegate import ShuttingDown, UsageError


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread(name="test-loop")
    thread.start()
    yield thread
    thread.stop()
    assert not thread.thread.is_alive()


def settle(loop: LoopThread) -> None:
    """Let the loop run everything already scheduled (two round trips through its queue)."""
    for _ in range(2):
        loop.call(asyncio.sleep(0), 5)


def test_producer_blocks_while_the_channel_is_full(loop_thread: LoopThread) -> None:
    channel = Channel(loop_thread.loop, maxsize=2)
    loop_thread.call(channel.put("a"), 5)
    loop_thread.call(channel.put("b"), 5)
    blocked = loop_thread.submit(channel.put("c"))
    settle(loop_thread)
    assert not blocked.done(), "put() returned although the channel was full"
    assert len(channel) == 2
    assert channel.get(5) == "a"  # frees one slot …
    blocked.result(5)  # … which releases the producer
    assert len(channel) == 2
    assert [channel.get(5), channel.get(5)] == ["b", "c"]


def test_blocked_producer_does_not_block_the_loop(loop_thread: LoopThread) -> None:
    channel = Channel(loop_thread.loop, maxsize=1)
    loop_thread.call(channel.put(1), 5)
    blocked = loop_thread.submit(channel.put(2))
    assert loop_thread.call(asyncio.sleep(0, result="loop still runs"), 5) == "loop still runs"
    channel.abandon()
    blocked.result(5)


def test_abandon_releases_the_producer_and_drops_later_items(loop_thread: LoopThread) -> None:
    channel = Channel(loop_thread.loop, maxsize=1)
    loop_thread.call(channel.put("x"), 5)
    blocked = loop_thread.submit(channel.put("y"))
    settle(loop_thread)
    channel.abandon()
    blocked.result(5)
    loop_thread.call(channel.put("z"), 5)  # a no-op now, never blocks
    assert len(channel) == 0


def test_end_drains_then_reports(loop_thread: LoopThread) -> None:
    channel = Channel(loop_thread.loop, maxsize=4)
    loop_thread.call(channel.put(1), 5)
    channel.end(ShuttingDown())
    assert channel.get(5) == 1
    with pytest.raises(ShuttingDown):
        channel.get(5)
    clean = Channel(loop_thread.loop, maxsize=4)
    clean.end()
    assert clean.get(5) is END


def test_get_times_out(loop_thread: LoopThread) -> None:
    channel = Channel(loop_thread.loop, maxsize=1)
    with pytest.raises(TimeoutError, match="no response data"):
        channel.get(0.05)
    with pytest.raises(ValueError, match="maxsize"):
        Channel(loop_thread.loop, maxsize=0)


@settings(max_examples=25, deadline=None)
@given(items=st.lists(st.integers(), max_size=60), maxsize=st.integers(1, 5))
def test_items_arrive_in_order_and_never_exceed_the_bound(items: list[int], maxsize: int) -> None:
    thread = LoopThread(name="prop-loop")
    thread.start()
    try:
        channel = Channel(thread.loop, maxsize)
        highest = 0

        async def produce() -> None:
            nonlocal highest
            for item in items:
                await channel.put(item)
                highest = max(highest, len(channel))

        future = thread.submit(produce())
        future.add_done_callback(lambda f: channel.end(f.exception()))
        received = []
        while (item := channel.get(5)) is not END:
            received.append(item)
        assert received == items
        assert highest <= maxsize
    finally:
        thread.stop()


def test_loop_thread_lifecycle() -> None:
    thread = LoopThread(name="life-loop")
    with pytest.raises(UsageError, match="not running"):
        thread.submit(asyncio.sleep(0))
    thread.start()

    async def forever() -> None:
        await asyncio.Event().wait()

    pending = thread.submit(forever())
    with pytest.raises(TimeoutError):
        thread.call(asyncio.sleep(5), timeout=0.05)

    async def nested() -> None:
        thread.call(asyncio.sleep(0), 1)  # a sync helper called from the loop itself

    with pytest.raises(UsageError, match="await it"):
        thread.call(nested(), 5)
    thread.stop()
    assert pending.cancelled()  # stop() cancels what is left
    assert not thread.thread.is_alive()
    assert all(t.name != "life-loop" for t in threading.enumerate())
    thread.stop()  # idempotent
