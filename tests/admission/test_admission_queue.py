"""Concurrency caps and their queue: FIFO, priority, timeout, full queue, deadline, close."""

from __future__ import annotations

import asyncio
import time

import pytest

from tidegate.admission import Admission, Ticket
from tidegate.errors import Overloaded, ShuttingDown

from .admission_support import info, running, sample


def queued(admission: Admission) -> float:
    return sum(
        gate.queued
        for rule in admission.rules
        if rule.gate_pool
        for gate in rule.gate_pool.gates.values()
    )


async def until(predicate, *, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until ``predicate()`` holds (bounded, so a bug fails instead of hanging)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def test_cap_without_queue_sheds_at_once() -> None:
    async with running(limits=[{"key": "global", "concurrency": 2}]) as admission:
        first, second = await admission.admit(info()), await admission.admit(info())
        with pytest.raises(Overloaded) as caught:
            await admission.admit(info())
        assert caught.value.status == 503 and caught.value.rule == "limits[0].concurrency"
        assert caught.value.retry_after >= 1
        assert (
            sample(
                admission, "tidegate_admission_shed_total", rule="limits[0]", reason="queue_full"
            )
            == 1
        )
        assert sample(admission, "tidegate_admission_in_flight", rule="limits[0]") == 2
        first.release()
        async with await admission.admit(info()):
            assert sample(admission, "tidegate_admission_in_flight", rule="limits[0]") == 2
        second.release()
        assert sample(admission, "tidegate_admission_in_flight", rule="limits[0]") == 0


async def test_queue_is_fifo_and_hands_slots_over() -> None:
    async with running(limits=[{"key": "global", "concurrency": 1, "queue": 5}]) as admission:
        holder = await admission.admit(info())
        order: list[int] = []

        async def waiter(n: int) -> None:
            async with await admission.admit(info()):
                order.append(n)
                await asyncio.sleep(0)

        tasks = []
        for n in range(4):
            tasks.append(asyncio.create_task(waiter(n)))
            await until(lambda n=n: queued(admission) == n + 1)
        assert sample(admission, "tidegate_admission_queue_length", rule="limits[0]") == 4
        holder.release()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3]
        assert queued(admission) == 0
        assert (
            sample(admission, "tidegate_admission_queue_wait_seconds_count", rule="limits[0]") == 4
        )


async def test_priority_header_jumps_the_queue() -> None:
    async with running(
        limits=[{"key": "global", "concurrency": 1, "queue": 5}],
        admission={"priority_header": "x-priority", "tenant_priority": {"gold": 5}},
    ) as admission:
        holder = await admission.admit(info())
        order: list[str] = []

        async def waiter(name: str, **fields) -> None:  # type: ignore[no-untyped-def]
            async with await admission.admit(info(**fields)):
                order.append(name)

        specs = [
            ("low", {}),
            ("high", {"headers": {"x-priority": "9"}}),
            ("mid", {"headers": {"x-priority": "1"}}),
            ("gold", {"tenant": "gold"}),
            ("junk", {"headers": {"x-priority": "not a number"}}),
        ]
        tasks = []
        for count, (name, fields) in enumerate(specs, 1):
            tasks.append(asyncio.create_task(waiter(name, **fields)))
            await until(lambda count=count: queued(admission) == count)
        holder.release()
        await asyncio.gather(*tasks)
        assert order == ["high", "gold", "mid", "low", "junk"]


async def test_queue_timeout_sheds_with_503() -> None:
    async with running(
        limits=[{"key": "global", "concurrency": 1, "queue": 5, "queue_timeout": "30ms"}]
    ) as admission:
        async with await admission.admit(info()):
            with pytest.raises(Overloaded, match="within the queue timeout"):
                await admission.admit(info())
            assert queued(admission) == 0
        assert (
            sample(admission, "tidegate_admission_shed_total", rule="limits[0]", reason="timeout")
            == 1
        )


async def test_full_queue_sheds_at_once() -> None:
    async with running(limits=[{"key": "global", "concurrency": 1, "queue": 1}]) as admission:
        holder = await admission.admit(info())
        waiting = asyncio.create_task(admission.admit(info()))
        await until(lambda: queued(admission) == 1)
        with pytest.raises(Overloaded, match="queue is full"):
            await admission.admit(info())
        holder.release()
        (await waiting).release()


async def test_deadline_sheds_before_queueing() -> None:
    async with running(limits=[{"key": "global", "concurrency": 1, "queue": 10}]) as admission:
        clock = asyncio.get_running_loop().time
        # Teach the gate how long a slot is held: one request holding it ~50 ms.
        async with await admission.admit(info()):
            await asyncio.sleep(0.05)
        async with await admission.admit(info()):
            # Already past its deadline: no point queueing.
            with pytest.raises(Overloaded, match="deadline"):
                await admission.admit(info(deadline=clock() - 1))
            # Expected wait (~50 ms) exceeds the 5 ms left: shed at once, without waiting.
            with pytest.raises(Overloaded, match="deadline"):
                await admission.admit(info(deadline=clock() + 0.005))
            assert queued(admission) == 0
            # A roomy deadline queues and is served.
            waiting = asyncio.create_task(admission.admit(info(deadline=clock() + 5)))
            await until(lambda: queued(admission) == 1)
        (await waiting).release()
        assert (
            sample(admission, "tidegate_admission_shed_total", rule="limits[0]", reason="deadline")
            == 2
        )


async def test_cancelled_waiter_leaves_the_queue() -> None:
    async with running(limits=[{"key": "global", "concurrency": 1, "queue": 5}]) as admission:
        holder = await admission.admit(info())
        gone = asyncio.create_task(admission.admit(info()))
        await until(lambda: queued(admission) == 1)
        stays = asyncio.create_task(admission.admit(info()))
        await until(lambda: queued(admission) == 2)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert queued(admission) == 1
        holder.release()
        ticket = await stays
        ticket.release()
        assert sample(admission, "tidegate_admission_in_flight", rule="limits[0]") == 0


async def test_per_key_caps_and_idle_gates_are_dropped() -> None:
    async with running(limits=[{"key": "api_key", "concurrency": 1}]) as admission:
        pool = admission.rules[0].gate_pool
        assert pool is not None
        a = await admission.admit(info(api_key_name="a"))
        b = await admission.admit(info(api_key_name="b"))  # another key has its own slot
        with pytest.raises(Overloaded):
            await admission.admit(info(api_key_name="a"))
        assert len(pool.gates) == 2
        a.release()
        b.release()
        a.release()  # idempotent
        assert pool.gates == {}


async def test_close_sheds_waiters_and_keeps_running_requests() -> None:
    from .admission_support import section

    admission = Admission(section(limits=[{"key": "global", "concurrency": 1, "queue": 3}]))
    await admission.start()
    holder = await admission.admit(info())
    waiters = [asyncio.create_task(admission.admit(info())) for _ in range(3)]
    await until(lambda: queued(admission) == 3)
    await admission.close()
    for task in waiters:
        with pytest.raises(ShuttingDown):
            await task
    holder.release()
    assert queued(admission) == 0


async def test_a_refused_waiter_frees_earlier_slots() -> None:
    """Per-key cap entered first, then the global one: shedding at the second frees the first."""
    async with running(
        limits=[
            {"key": "global", "concurrency": 1},
            {"key": "api_key", "concurrency": 5},
        ]
    ) as admission:
        holder = await admission.admit(info(api_key_name="a"))
        with pytest.raises(Overloaded):
            await admission.admit(info(api_key_name="b"))
        per_key = admission.rules[0]
        assert per_key.label == "limits[1]"  # per-client caps come first
        assert per_key.gate_pool is not None and "b" not in per_key.gate_pool.gates
        holder.release()


async def test_ticket_exit_on_error_still_releases() -> None:
    async with running(limits=[{"key": "global", "concurrency": 1}]) as admission:
        with pytest.raises(ValueError):
            async with await admission.admit(info()) as ticket:
                assert isinstance(ticket, Ticket)
                raise ValueError("boom")
        async with await admission.admit(info()):
            pass
