"""Metrics land on the registry the Gateway passes in, never the global one."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from tidegate.errors import Overloaded, RateLimited

from .admission_support import info, running, sample


async def test_counters_by_rule_on_the_given_registry() -> None:
    registry = CollectorRegistry()
    async with running(
        registry=registry,
        limits=[
            {"name": "per-ip", "key": "ip", "requests": "2/minute"},
            {"name": "cap", "key": "global", "concurrency": 1},
        ],
    ) as admission:
        assert admission.registry is registry
        held = await admission.admit(info(client_ip="192.0.2.1"))
        with pytest.raises(Overloaded):
            await admission.admit(info(client_ip="192.0.2.2"))
        held.release()
        (await admission.admit(info(client_ip="192.0.2.1"))).release()
        with pytest.raises(RateLimited):
            await admission.admit(info(client_ip="192.0.2.1"))
        assert sample(admission, "tidegate_admission_admitted_total", rule="per-ip") == 2
        assert sample(admission, "tidegate_admission_admitted_total", rule="cap") == 2
        assert (
            sample(admission, "tidegate_admission_limited_total", rule="per-ip", kind="requests")
            == 1
        )
        assert (
            sample(admission, "tidegate_admission_shed_total", rule="cap", reason="queue_full") == 1
        )
        assert sample(admission, "tidegate_admission_in_flight", rule="cap") == 0
        assert sample(admission, "tidegate_admission_queue_length", rule="cap") == 0
    assert (
        REGISTRY.get_sample_value("tidegate_admission_admitted_total", {"rule": "per-ip"}) is None
    )


async def test_two_admissions_do_not_collide() -> None:
    async with (
        running(limits=[{"requests": "1/second"}]) as one,
        running(limits=[{"requests": "1/second"}]) as two,
    ):
        assert one.registry is not two.registry
