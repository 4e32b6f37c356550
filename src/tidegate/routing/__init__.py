"""Tiered model routing and resilience.

``Router`` is the executor the Gateway owns; the other names are its parts, public so host code
and tools (``tidegate calibrate``) can use them on their own.
"""

from __future__ import annotations

from .balancer import LeastInFlight, PowerOfTwoEwma, RoundRobin, WeightedRandom, make_balancer
from .breaker import BreakerState, CircuitBreaker
from .cascade import CascadeRule
from .decision import RouteDecision
from .deployment import Deployment
from .retry import RetryPolicy
from .router import Router
from .scorer import DEFAULT_WEIGHTS, Score, Scorer
from .stream import RouteStream

_LAZY = {
    "Calibration": "calibration", "Evaluation": "calibration", "LabeledPrompt": "calibration",
    "calibrate": "calibration", "evaluate": "calibration", "load_labeled": "calibration",
    "Head": "head", "fit_head": "head",
}  # fmt: skip


def __getattr__(name: str) -> object:
    """The learned head and calibration need numpy; import them only when asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_WEIGHTS",
    "BreakerState",
    "Calibration",
    "CascadeRule",
    "CircuitBreaker",
    "Deployment",
    "Evaluation",
    "Head",
    "LabeledPrompt",
    "LeastInFlight",
    "PowerOfTwoEwma",
    "RetryPolicy",
    "RoundRobin",
    "RouteDecision",
    "RouteStream",
    "Router",
    "Score",
    "Scorer",
    "WeightedRandom",
    "calibrate",
    "evaluate",
    "fit_head",
    "load_labeled",
    "make_balancer",
]
