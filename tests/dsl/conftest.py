from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from support.dsl import dsl, edge, node


@pytest.fixture
def simple() -> dict[str, Any]:
    """start(x) → template → end(out)."""
    return dsl(
        [
            node("start", "start", "Start", variables=[{"variable": "x", "label": "x", "type": "text-input", "required": True}]),
            node("tpl", "template-transform", "Template", template="hi {{ x }}",
                 variables=[{"variable": "x", "value_selector": ["start", "x"]}]),
            node("end", "end", "End", outputs=[{"variable": "out", "value_selector": ["tpl", "output"]}]),
        ],
        [edge("start", "tpl"), edge("tpl", "end")],
    )


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(node=node, edge=edge, dsl=dsl)
