"""Semantic checks that need the whole config (cross references, URLs, prefixes).

Each capability contributes a function ``(config) -> list[str]``; the loader runs them all and
raises one ``ConfigError`` with everything they found.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from .admission import validate_admission
from .agents import agents_config_of, validate_agents
from .cache import validate_cache
from .knowledge import validate_knowledge
from .routing import validate_routing
from .schema import TidegateConfig
from .workflows import validate_workflows

__all__ = ["VALIDATORS", "validate_core"]


def validate_core(config: TidegateConfig) -> list[str]:
    issues: list[str] = []
    for name, model in config.models.items():
        parts = urlsplit(model.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            issues.append(
                f"Expected an http(s) URL like `http://127.0.0.1:8001/v1`, got `{model.url}`"
                f" - at `$.models.{name}.url`"
            )
        if model.max_concurrency < 1:
            issues.append(
                f"Expected `int` >= 1, got `{model.max_concurrency}` - at `$.models.{name}.max_concurrency`"
            )
        if model.timeout <= 0:
            issues.append(f"Expected a duration > 0, got `{model.timeout}s` - at `$.models.{name}.timeout`")
    secrets: dict[str, str] = {}
    for name, secret in config.auth.keys().items():
        if secret in secrets:
            issues.append(
                f"Expected every API key to be distinct, got the same secret for `{secrets[secret]}`"
                f" and `{name}` - at `$.auth.api_keys`"
            )
        secrets[secret] = name
    if config.max_body_size < 1024:
        issues.append(
            f"Expected a size >= 1kb, got `{int(config.max_body_size)}` bytes - at `$.max_body_size`"
        )
    if config.turn_budget is not None and not 0 < config.turn_budget <= 0.1:
        issues.append(
            f"Expected a duration in (0, 100ms] or null, got `{float(config.turn_budget)}s` - at `$.turn_budget`"
        )
    return issues


VALIDATORS: list[Callable[[TidegateConfig], list[str]]] = [
    validate_core,
    lambda config: validate_routing(config.routing, config),
    lambda config: validate_admission(config, config),
    lambda config: validate_knowledge(config, config),
    lambda config: validate_cache(config.cache, config),
    lambda config: validate_workflows(config.workflows, config),
    lambda config: validate_agents(agents_config_of(config), config),
]
