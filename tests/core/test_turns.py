"""TurnBudget: bursts of work spread over loop turns, in arrival order, without losing anyone."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidegate._turns import TurnBudget


def spin(seconds: float) -> None:
    """CPU work on the loop (what a task does between two awaits)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_a_quiet_loop_never_waits() -> None:
    budget = TurnBudget(0.001)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    for _ in range(20):  # one paced step a turn, each longer than the budget
        task = asyncio.create_task(other())
        await budget.pace()  # returns without yielding: `other` cannot run before it
        assert ran.count("other") == len(ran) - 0 and task.done() is False
        spin(0.002)
        await task
    assert budget.deferred == 0


async def test_a_burst_lets_timers_through_and_keeps_arrival_order() -> None:
    budget = TurnBudget(0.002)
    done: list[int] = []
    ticks: list[int] = []  # how many tasks had finished each time the timer fired

    async def work(i: int) -> None:
        await budget.pace()
        spin(0.0005)  # 100 tasks x 0.5 ms: 50 ms if one turn ran them all
        done.append(i)

    def tick() -> None:
        ticks.append(len(done))
        if len(done) < 100:
            loop.call_later(0, tick)

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(work(i)) for i in range(100)]
    loop.call_later(0, tick)
    await asyncio.gather(*tasks)
    assert done == list(range(100))  # arrival order, also for those that waited
    assert budget.deferred > 0 and budget.waiting == 0
    between = [n for n in ticks if 0 < n < 100]
    assert len(between) >= 5  # the timer fired many times while the burst was being worked off


async def test_cancelled_waiters_neither_block_nor_lose_a_turn(no_leaked_tasks: object) -> None:
    budget = TurnBudget(0.001)
    done: list[int] = []

    async def work(i: int) -> None:
        await budget.pace()
        spin(0.0005)
        done.append(i)

    tasks = [asyncio.create_task(work(i)) for i in range(40)]
    await asyncio.sleep(0)  # all have arrived; most wait
    for task in tasks[5:40:3]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = {i for i, r in enumerate(results) if isinstance(r, asyncio.CancelledError)}
    assert cancelled and sorted(set(range(40)) - cancelled) == done
    assert budget.waiting == 0
    await no_leaked_tasks()  # type: ignore[operator]


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="Expected a budget > 0 seconds, got `0`"):
        TurnBudget(0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    waves=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=5),
    cost=st.sampled_from([0.0, 0.0001, 0.0004]),
    cancel_every=st.integers(min_value=0, max_value=7),
)
def test_every_caller_gets_through_in_order(waves: list[int], cost: float, cancel_every: int) -> None:
    """Waves of callers arriving a turn apart, some cancelled while waiting: everyone else goes
    through, in arrival order, and nobody is left waiting."""

    async def scenario() -> None:
        budget = TurnBudget(0.0005)
        order: list[int] = []

        async def work(i: int) -> None:
            await budget.pace()
            spin(cost)
            order.append(i)

        tasks: list[asyncio.Task[None]] = []
        for size in waves:
            tasks += [asyncio.create_task(work(len(tasks) + j)) for j in range(size)]
            await asyncio.sleep(0)
        if cancel_every:
            for task in tasks[::cancel_every][1:]:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        finished = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
        assert order == finished and budget.waiting == 0

    asyncio.run(scenario())


async def test_a_gateway_burst_is_paced_and_every_call_answers(sim: object) -> None:
    from tidegate import Gateway
    from tidegate.config import parse_config

    url = sim.url  # type: ignore[attr-defined]
    async with Gateway(parse_config({"models": {"light": {"url": url}}, "turn_budget": 0.0001})) as gateway:
        assert gateway.turns is not None

        async def blocking(i: int) -> str:
            answer = await gateway.chat([{"role": "user", "content": f"question {i}"}], model="light")
            return str(answer["choices"][0]["message"]["content"])

        async def streamed(i: int) -> int:
            return len([c async for c in gateway.stream_chat([{"role": "user", "content": f"q {i}"}], model="light")])

        answers = await asyncio.gather(*(blocking(i) for i in range(60)), *(streamed(i) for i in range(20)))
        assert all(answers) and gateway.turns.deferred > 0 and gateway.turns.waiting == 0
    async with Gateway(parse_config({"models": {"light": {"url": url}}, "turn_budget": None})) as gateway:
        assert gateway.turns is None
        assert (await gateway.chat([{"role": "user", "content": "hi"}], model="light"))["choices"]
