from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidegate.routing.balancer import (
    LeastInFlight,
    PowerOfTwoEwma,
    RoundRobin,
    WeightedRandom,
    make_balancer,
)
from tidegate.routing.breaker import CircuitBreaker
from tidegate.routing.deployment import Deployment


def deployments(count: int, **kwargs: object) -> list[Deployment]:
    return [
        Deployment(f"d{i}", None, breaker=CircuitBreaker(), **kwargs)  # type: ignore[arg-type]
        for i in range(count)
    ]


def test_weighted_random_follows_weights() -> None:
    pool = deployments(3)
    pool[0].weight, pool[1].weight, pool[2].weight = 1.0, 3.0, 0.0
    balancer = WeightedRandom(random.Random(7))
    picks = Counter(balancer.choose(pool).name for _ in range(8000))
    assert picks["d2"] == 0
    assert 2.6 < picks["d1"] / picks["d0"] < 3.4


def test_weighted_random_with_all_zero_weights_still_spreads() -> None:
    pool = deployments(2, weight=0.0)
    balancer = WeightedRandom(random.Random(1))
    assert {balancer.choose(pool).name for _ in range(50)} == {"d0", "d1"}


def test_least_in_flight_picks_the_idlest_and_shares_ties() -> None:
    pool = deployments(3)
    pool[0].in_flight, pool[1].in_flight, pool[2].in_flight = 5, 2, 2
    balancer = LeastInFlight(random.Random(3))
    picks = Counter(balancer.choose(pool).name for _ in range(2000))
    assert picks["d0"] == 0
    assert 800 < picks["d1"] < 1200


def test_p2c_prefers_the_cheaper_of_two() -> None:
    pool = deployments(2)
    pool[0].ewma, pool[1].ewma = 0.100, 0.200
    balancer = PowerOfTwoEwma(random.Random(5))
    assert all(balancer.choose(pool).name == "d0" for _ in range(100))
    pool[0].in_flight = 3  # 0.1 * 4 > 0.2 * 1
    assert balancer.choose(pool).name == "d1"


def test_p2c_never_picks_the_worst_of_many() -> None:
    pool = deployments(5)
    for index, deployment in enumerate(pool):
        deployment.ewma = 0.01 * (index + 1)
    balancer = PowerOfTwoEwma(random.Random(11))
    picks = Counter(balancer.choose(pool).name for _ in range(3000))
    assert picks["d4"] == 0
    assert picks["d0"] > picks["d1"] > picks["d2"] > picks["d3"]


def test_round_robin_cycles() -> None:
    pool = deployments(3)
    balancer = RoundRobin()
    assert [balancer.choose(pool).name for _ in range(6)] == ["d0", "d1", "d2"] * 2


def test_make_balancer_names() -> None:
    rng = random.Random()
    assert isinstance(make_balancer("least-latency", rng), PowerOfTwoEwma)
    assert isinstance(make_balancer("least-in-flight", rng), LeastInFlight)
    assert isinstance(make_balancer("weighted", rng), WeightedRandom)
    assert isinstance(make_balancer("round-robin", rng), RoundRobin)
    with pytest.raises(ValueError, match="least-latency"):
        make_balancer("fastest", rng)


@settings(max_examples=100, deadline=None)
@given(
    loads=st.lists(st.tuples(st.integers(0, 50), st.floats(0.0, 5.0)), min_size=1, max_size=8),
    kind=st.sampled_from(["weighted", "least-in-flight", "least-latency", "round-robin"]),
    seed=st.integers(0, 2**32),
)
def test_every_strategy_returns_a_candidate(
    loads: list[tuple[int, float]], kind: str, seed: int
) -> None:
    pool = deployments(len(loads))
    for deployment, (in_flight, ewma) in zip(pool, loads, strict=True):
        deployment.in_flight, deployment.ewma = in_flight, ewma
    balancer = make_balancer(kind, random.Random(seed))
    chosen = balancer.choose(pool)
    assert chosen in pool
    if kind == "least-in-flight":
        assert chosen.in_flight == min(d.in_flight for d in pool)
