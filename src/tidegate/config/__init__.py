"""Config: typed structs, the file loader and semantic validation."""

from __future__ import annotations

from .loader import convert_section, load_config, parse_config
from .schema import AuthConfig, MetricsConfig, ModelConfig, TidegateConfig
from .types import ByteSize, ConfigStruct, Duration, Rate

__all__ = [
    "AuthConfig",
    "ByteSize",
    "ConfigStruct",
    "Duration",
    "MetricsConfig",
    "ModelConfig",
    "Rate",
    "TidegateConfig",
    "convert_section",
    "load_config",
    "parse_config",
]
