"""Dify DSL: read an exported app (workflow or chatflow) into a validated graph spec."""

from __future__ import annotations

from .loader import MAX_VERSION, MIN_VERSION, load_dsl, parse_dsl, read_dsl
from .refs import Selector, parse_template, selector_text
from .spec import ConversationVariable, EdgeSpec, EnvVariable, NodeSpec, WorkflowSpec

__all__ = [
    "MAX_VERSION",
    "MIN_VERSION",
    "ConversationVariable",
    "EdgeSpec",
    "EnvVariable",
    "NodeSpec",
    "Selector",
    "WorkflowSpec",
    "load_dsl",
    "parse_dsl",
    "parse_template",
    "read_dsl",
    "selector_text",
]
