from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tidegate import Gateway
from tidegate.agent import AgentRuntime
from tidegate.config import parse_config
from tidegate.config.agents import AgentsConfig
from tidegate.config.loader import convert_section
from tidegate.providers.simulator import Simulator

TOOLS: dict[str, Any] = {
    "order_status": {"python": "agent.agent_support:order_status"},
    "weather": {"python": "agent.agent_support:weather"},
    "slow": {"python": "agent.agent_support:slow", "timeout": "100ms"},
    "broken": {"python": "agent.agent_support:broken"},
    "nap": {"python": "agent.agent_support:nap"},
    "whoami": {"python": "agent.agent_support:whoami"},
}


def agents_config(data: dict[str, Any]) -> AgentsConfig:
    return convert_section(data, AgentsConfig, "$")


@contextlib.asynccontextmanager
async def runtime_for(
    sim: Simulator,
    *,
    agents: dict[str, Any],
    tools: dict[str, Any] | None = None,
    sessions: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
) -> AsyncIterator[AgentRuntime]:
    """A started gateway (pointing at ``sim``) with an agent runtime built from these sections."""
    model_section = models or {"light": {"url": sim.url, "model": "qwen-light", "timeout": "5s"}}
    gateway = Gateway(parse_config({"models": model_section}))
    data: dict[str, Any] = {"tools": TOOLS if tools is None else tools, "agents": agents}
    if sessions is not None:
        data["sessions"] = sessions
    runtime = AgentRuntime(gateway, agents_config(data))
    await gateway.start()
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()
        await gateway.stop()


@pytest.fixture
def make_runtime(sim: Simulator) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        return runtime_for(sim, **kwargs)

    return make
