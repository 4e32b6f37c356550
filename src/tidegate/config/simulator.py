"""Settings of the built-in LLM simulator, the fake upstream every test and benchmark talks to.

They are a config Struct like any other section so the ``tidegate simulate`` flags, a test's
``Simulator(SimulatorConfig(...))`` and a runtime ``POST /sim/config`` patch are all checked by the
same decoder and report a bad value with its path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec

from .types import ConfigStruct, Duration, dec_hook

__all__ = [
    "FAULT_KINDS",
    "FaultKind",
    "SimulatorConfig",
    "simulator_config_from",
    "simulator_config_to_builtins",
]

FaultKind = Literal["500", "503", "429", "hang", "reset", "malformed"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

_Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]


class SimulatorConfig(ConfigStruct):
    """How the simulated model behaves: latency, length, faults and embeddings.

    ``ttft`` is the mean time to first token; ``ttft_jitter`` its spread (half-width for
    ``uniform``, standard deviation for ``lognormal``). ``tokens_per_second`` paces tokens after
    the first; 0 sends them as fast as the socket takes them. ``faults`` maps a fault kind to the
    share of model requests that suffer it; ``fail_all`` makes every model request fail with
    ``fail_kind`` (a switch tests flip at runtime to break and heal an upstream).
    """

    ttft: Duration = Duration(0.0)
    ttft_jitter: Duration = Duration(0.0)
    ttft_dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    tokens_per_second: _NonNegative = 0.0
    tokens: Annotated[int, msgspec.Meta(ge=0)] = 24
    """Natural completion length in words (one word = one token)."""
    faults: dict[FaultKind, _Rate] = msgspec.field(default_factory=dict)
    fail_all: bool = False
    fail_kind: FaultKind = "500"
    fault_after: Annotated[int, msgspec.Meta(ge=0)] = 3
    """Content chunks a stream sends before a ``reset`` or ``malformed`` fault strikes."""
    retry_after: _NonNegative = 1.0
    """Seconds announced in ``Retry-After`` on a simulated 429."""
    seed: int = 0
    embedding_dim: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 384
    models: list[str] = msgspec.field(
        default_factory=lambda: ["sim-small", "sim-large", "sim-embed"]
    )

    def __post_init__(self) -> None:
        total = sum(self.faults.values())
        if total > 1.0:
            raise ValueError(f"Expected fault rates summing to <= 1, got `{round(total, 6)}`")


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(obj)
    raise NotImplementedError(f"cannot encode {type(obj)!r}")


def simulator_config_to_builtins(cfg: SimulatorConfig) -> dict[str, Any]:
    """JSON-ready dict of ``cfg`` (durations as seconds)."""
    out: dict[str, Any] = msgspec.to_builtins(cfg, enc_hook=_enc_hook)
    return out


def simulator_config_from(data: object, base: SimulatorConfig | None = None) -> SimulatorConfig:
    """Build a config from a mapping; keys it lacks keep ``base``'s values (a shallow patch:
    a ``faults`` given replaces the whole table).

    Raises ``msgspec.ValidationError`` naming the path of the first bad value.
    """
    if not isinstance(data, dict):
        raise msgspec.ValidationError(f"Expected `object`, got `{type(data).__name__}` - at `$`")
    merged = simulator_config_to_builtins(base) if base is not None else {}
    merged.update(data)
    return msgspec.convert(merged, SimulatorConfig, dec_hook=dec_hook)
