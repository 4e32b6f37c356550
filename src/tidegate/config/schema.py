"""The root config: the file a user points tidegate at, as typed structs.

Sections owned by capabilities (routing, cache, limits, workflows, …) live in their own modules
beside this one and are attached here, so the whole vocabulary of the file is readable from one
struct tree and every unknown key is caught with its path.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .admission import AdmissionConfig, LimitRule, ProtectRule
from .agents import AgentConfig, SessionsConfig, ToolConfig
from .cache import CacheConfig
from .knowledge import EmbedderConfig, KnowledgeConfig
from .routing import RoutingConfig
from .types import ByteSize, ConfigStruct, Duration
from .workflows import WorkflowConfig

__all__ = [
    "AuthConfig",
    "MetricsConfig",
    "ModelConfig",
    "TidegateConfig",
]


class ModelConfig(ConfigStruct):
    """One upstream deployment: an OpenAI-compatible HTTP server and the model name it serves."""

    url: str
    model: str | None = None
    """The upstream's model name; defaults to the key this deployment is configured under."""
    api_key: str | None = None
    kind: Literal["chat", "embeddings"] = "chat"
    timeout: Duration = Duration(60.0)
    """Overall deadline of one call, streams included."""
    connect_timeout: Duration = Duration(5.0)
    first_byte_timeout: Duration | None = None
    """Deadline for the response headers (and first chunk of a stream); defaults to ``timeout``."""
    read_timeout: Duration | None = None
    """Longest silence between two chunks of a stream; unbounded when unset (``timeout`` still holds)."""
    max_concurrency: int = 256
    """Connection pool size toward this upstream; requests beyond it wait for a free connection."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    input_price: float = 0.0
    """Price per 1M prompt tokens, in the currency the user chooses; feeds cost accounting."""
    output_price: float = 0.0
    """Price per 1M completion tokens."""

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")


class AuthConfig(ConfigStruct):
    """Bearer keys for the surfaces. ``api_keys`` maps a key's name (its tenant) to its secret.

    Written as a mapping, a list of secrets (named ``key0``, ``key1``, …), or one string
    ``name:secret,name2:secret2`` so a whole key set can come from one environment variable.
    """

    api_keys: dict[str, str] | list[str] | str | None = None
    public_health: bool = True
    public_metrics: bool = True

    def keys(self) -> dict[str, str]:
        """Name → secret, whatever form the file used; empty secrets are dropped."""
        raw = self.api_keys
        if raw is None:
            return {}
        if isinstance(raw, dict):
            return {name: secret for name, secret in raw.items() if secret}
        if isinstance(raw, str):
            parts = [part.strip() for part in raw.split(",") if part.strip()]
            named: dict[str, str] = {}
            for index, part in enumerate(parts):
                name, sep, secret = part.partition(":")
                if sep:
                    named[name.strip()] = secret.strip()
                else:
                    named[f"key{index}"] = part
            return {name: secret for name, secret in named.items() if secret}
        return {f"key{index}": secret for index, secret in enumerate(raw) if secret}


class MetricsConfig(ConfigStruct):
    enabled: bool = True
    latency_buckets: list[float] = msgspec.field(
        default_factory=lambda: [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ]
    )


class TidegateConfig(ConfigStruct):
    """The whole file. ``source`` is where it was read from (``None`` when built in code)."""

    prefix: str = "/ai"
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    limits: list[LimitRule] = msgspec.field(default_factory=list)
    protect: list[ProtectRule] = msgspec.field(default_factory=list)
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)
    cache: CacheConfig | None = None
    embeddings: dict[str, EmbedderConfig] = msgspec.field(default_factory=dict)
    knowledge: dict[str, KnowledgeConfig] = msgspec.field(default_factory=dict)
    workflows: dict[str, WorkflowConfig] = msgspec.field(default_factory=dict)
    tools: dict[str, ToolConfig] = msgspec.field(default_factory=dict)
    agents: dict[str, AgentConfig] = msgspec.field(default_factory=dict)
    sessions: SessionsConfig = msgspec.field(default_factory=SessionsConfig)
    max_body_size: ByteSize = ByteSize(4 * 1024 * 1024)
    shutdown_timeout: Duration = Duration(30.0)
    tenant_header: str | None = None
    """A header naming the tenant when no API keys are configured (e.g. set by an upstream proxy)."""
    overhead_header: bool = True
    turn_budget: Duration | None = Duration(0.001)
    """How long request work may run in one event-loop turn before later work waits for the next
    (bursts of answers landing together stay fair to timers and other requests); null: off."""
    source: str | None = None

    def __post_init__(self) -> None:
        prefix = "/" + self.prefix.strip("/") if self.prefix.strip("/") else ""
        self.prefix = prefix
