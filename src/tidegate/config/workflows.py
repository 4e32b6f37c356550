"""The ``workflows:`` section: which Dify DSL files are served as apps, and how they may run.

A workflow is an app: its ``api_keys`` select it on the Dify surface, ``canary`` sends a fixed
share of users to a second DSL file (a rollback is deleting the block), and the limits bound every
run so one bad DSL cannot hold the gateway (deadline, step budget, per-node timeout).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from .types import ByteSize, ConfigStruct, Duration

if TYPE_CHECKING:
    from .schema import TidegateConfig

__all__ = [
    "CanaryConfig",
    "CodeLimitsConfig",
    "HttpNodeConfig",
    "WorkflowConfig",
    "resolve_path",
    "validate_workflows",
]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class CanaryConfig(ConfigStruct):
    """A second version of the app that a deterministic share of users runs."""

    file: str
    percent: float = 10.0
    sticky: Literal["user", "conversation", "none"] = "user"
    """What keeps a caller on one version: the same ``user`` (or conversation) always lands on the
    same side; ``none`` draws per run."""


class HttpNodeConfig(ConfigStruct):
    """Bounds for http-request nodes; private targets are refused unless ``allow_private``."""

    allow_private: bool = False
    """Allow loopback, private (RFC 1918), link-local and other non-public addresses (SSRF guard)."""
    timeout: Duration = Duration(30.0)
    """Upper bound on any one request, whatever the node's own timeouts say."""
    max_response_size: ByteSize = ByteSize(10 * 1024 * 1024)
    max_redirects: int = 5


class CodeLimitsConfig(ConfigStruct):
    """Limits of one code-node execution in the sandbox worker process."""

    cpu_time: Duration = Duration(5.0)
    wall_time: Duration = Duration(10.0)
    memory: ByteSize = ByteSize(256 * 1024 * 1024)
    max_output_size: ByteSize = ByteSize(1024 * 1024)


class WorkflowConfig(ConfigStruct):
    """One app: a Dify DSL export plus the keys, canary and limits it runs with."""

    file: str
    api_keys: list[str] = msgspec.field(default_factory=list)
    canary: CanaryConfig | None = None
    datasets: dict[str, str] = msgspec.field(default_factory=dict)
    """Dataset ids used in the DSL's knowledge-retrieval nodes → our knowledge base names."""
    models: dict[str, str] = msgspec.field(default_factory=dict)
    """Model names used in the DSL's LLM nodes → our configured model names (default: same name)."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """Values for the DSL's environment variables (override the exported defaults)."""
    timeout: Duration = Duration(300.0)
    """Deadline of one whole run; nodes still running then are cancelled."""
    node_timeout: Duration = Duration(120.0)
    """Deadline of one node attempt (retries get a fresh one)."""
    max_steps: int = 500
    """Node executions one run may start (iterations and loops count every inner node)."""
    max_active_runs: int = 0
    """Runs of this app executing at once; more wait for a slot (0: no cap)."""
    http: HttpNodeConfig = msgspec.field(default_factory=HttpNodeConfig)
    code: CodeLimitsConfig = msgspec.field(default_factory=CodeLimitsConfig)


def resolve_path(path: str, root: TidegateConfig | None) -> Path:
    """A DSL path as the user wrote it, resolved against the config file's folder."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or root is None or not root.source:
        return candidate
    return Path(root.source).resolve().parent / candidate


def validate_workflows(
    workflows: dict[str, WorkflowConfig], root: TidegateConfig | None
) -> list[str]:
    """Semantic checks of the section (the DSL files themselves are checked when loaded)."""
    issues: list[str] = []
    owners: dict[str, str] = {}
    for name, cfg in workflows.items():
        at = f"$.workflows.{name}"
        if not _NAME.match(name):
            issues.append(
                f"Expected a workflow name of letters, digits, `_`, `.` or `-`, got `{name}` - at `{at}`"
            )
        files = [("file", cfg.file)] + ([("canary.file", cfg.canary.file)] if cfg.canary else [])
        for field, file in files:
            if not file.strip():
                issues.append(f"Expected a DSL file path, got `''` - at `{at}.{field}`")
                continue
            path = resolve_path(file, root)
            if not path.is_file():
                issues.append(f"Expected an existing DSL file, got `{file}` ({path}) - at `{at}.{field}`")
        for index, key in enumerate(cfg.api_keys):
            if not key:
                issues.append(f"Expected a non-empty API key, got `''` - at `{at}.api_keys[{index}]`")
            elif key in owners and owners[key] != name:
                issues.append(
                    f"Expected every app key to select one workflow, got the same key for "
                    f"`{owners[key]}` and `{name}` - at `{at}.api_keys[{index}]`"
                )
            else:
                owners[key] = name
        if cfg.canary is not None and not 0 <= cfg.canary.percent <= 100:
            issues.append(
                f"Expected a percent between 0 and 100, got `{cfg.canary.percent:g}` - at `{at}.canary.percent`"
            )
        for field, value in (("timeout", cfg.timeout), ("node_timeout", cfg.node_timeout)):
            if value <= 0:
                issues.append(f"Expected a duration > 0, got `{float(value):g}s` - at `{at}.{field}`")
        if cfg.max_active_runs < 0:
            issues.append(f"Expected `int` >= 0, got `{cfg.max_active_runs}` - at `{at}.max_active_runs`")
        if cfg.max_steps < 1:
            issues.append(f"Expected `int` >= 1, got `{cfg.max_steps}` - at `{at}.max_steps`")
        if cfg.http.max_redirects < 0:
            issues.append(
                f"Expected `int` >= 0, got `{cfg.http.max_redirects}` - at `{at}.http.max_redirects`"
            )
        for field in ("cpu_time", "wall_time"):
            if getattr(cfg.code, field) <= 0:
                issues.append(
                    f"Expected a duration > 0, got `{float(getattr(cfg.code, field)):g}s` - at `{at}.code.{field}`"
                )
        if cfg.code.memory < 32 * 1024 * 1024:
            issues.append(
                f"Expected a memory limit >= 32MB, got `{int(cfg.code.memory)}` bytes - at `{at}.code.memory`"
            )
    return issues
