"""Node families: one module each; :mod:`.registry` says which types a tidegate can run."""

from __future__ import annotations

from .base import Compiler, LLMClient, Node, NodeContext, NodeFailure, NodeResult, Services
from .registry import EXTENSION_POINTS, NodeRegistry, default_registry

__all__ = [
    "EXTENSION_POINTS",
    "Compiler",
    "LLMClient",
    "Node",
    "NodeContext",
    "NodeFailure",
    "NodeRegistry",
    "NodeResult",
    "Services",
    "default_registry",
]
