from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from support.dsl import dsl, edge, node, simple_dsl


@pytest.fixture
def simple() -> dict[str, Any]:
    return simple_dsl()


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(node=node, edge=edge, dsl=dsl)
