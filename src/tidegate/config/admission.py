"""Config for admission control: the ``limits:`` rules, the ``protect:`` host-route rules and the
shared ``admission:`` settings (storage, strategy, trusted proxies, priorities).

A rule is one sentence: *per KEY, within SCOPE, allow REQUESTS and TOKENS at these rates (with
this BURST), and at most CONCURRENCY at once with a QUEUE of this length.* Several rules combine:
a request must pass every rule that applies to it. Keeping each rule flat (rather than nesting
rate/concurrency sub-objects) keeps the file readable and the error paths short
(``$.limits[2].queue_timeout``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from .types import ConfigStruct, Duration, Rate

__all__ = [
    "KEY_KINDS",
    "SCOPE_KINDS",
    "AdaptiveConfig",
    "AdmissionConfig",
    "AdmissionSection",
    "AdmissionSource",
    "LimitRule",
    "ProtectRule",
    "validate_admission",
]

KEY_KINDS = ("ip", "api_key", "user", "tenant", "global")
"""Plus ``header:NAME``: the value of a request header (e.g. ``header:x-org-id``)."""
SCOPE_KINDS = ("surface", "model", "workflow")
"""Plus a path glob starting with ``/`` (``/ai/v1/embeddings``, ``/api/*``)."""

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STORAGE_SCHEMES = (
    "async+memory",
    "async+redis",
    "async+rediss",
    "async+redis+unix",
    "async+redis+cluster",
    "async+rediss+cluster",
    "async+redis+sentinel",
    "async+valkey",
    "async+valkeys",
)


class AdaptiveConfig(ConfigStruct):
    """Tuning of ``concurrency: auto`` (a gradient limiter driven by measured upstream latency)."""

    initial: int = 16
    min: int = 2
    max: int = 512
    tolerance: float = 1.5
    """How much slower than its baseline the upstream may get before the limit shrinks."""
    smoothing: float = 0.2
    """Weight of each new estimate; lower reacts slower but steadier."""
    interval: Duration = Duration(0.05)
    """How often the limit is updated (given at least ``samples`` finished requests)."""
    samples: int = 8
    baseline_window: Duration = Duration(30.0)
    """How long the fastest latency seen stays the no-load baseline."""
    backoff: float = 0.9
    """Multiplicative decrease for a window in which a request failed upstream (timeout, 5xx)."""


class LimitRule(ConfigStruct):
    """One rule of ``limits:``; see the module docstring for how rules combine."""

    name: str | None = None
    """Label in metrics and errors; defaults to the rule's path, e.g. ``limits[0]``."""
    key: str = "global"
    """Who is counted: ``ip``, ``api_key``, ``user``, ``tenant``, ``header:NAME`` or ``global``."""
    requests: Rate | None = None
    tokens: Rate | None = None
    burst: int | None = None
    """Token-bucket capacity for the rule's one rate (``requests`` or ``tokens``), refilled at it."""
    concurrency: int | Literal["auto"] | None = None
    queue: int = 0
    """Requests allowed to wait for a concurrency slot; beyond it they are shed at once."""
    queue_timeout: Duration = Duration(5.0)
    scope: str | None = None
    """``surface`` | ``model`` | ``workflow`` (counted separately per value) or a path glob (filter)."""
    adaptive: AdaptiveConfig | None = None


class ProtectRule(LimitRule, kw_only=True):
    """A rule guarding host-app routes outside the prefix: ``{path: /api/*, key: ip, requests: …}``."""

    path: str | list[str]


class AdmissionConfig(ConfigStruct):
    """The ``admission:`` section: where counters live and how clients are identified."""

    storage: str = "async+memory://"
    """A `limits` async storage URI; ``async+redis://host:6379`` shares counters between processes."""
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "moving-window"
    """Strategy for ``requests`` rates. Token rates always use sliding-window-counter."""
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    """CIDRs whose ``X-Forwarded-For`` / ``Forwarded`` headers are believed. Empty: none are."""
    priority_header: str | None = None
    """A header carrying an integer queue priority (higher first); set it at your trusted edge."""
    tenant_priority: dict[str, int] = msgspec.field(default_factory=dict)
    headers: bool = True
    """Compute ``RateLimit-*`` values for admitted requests (one extra storage read per rate)."""
    fail_open: bool = True
    """When shared storage fails, admit (and count the error) rather than refuse everyone."""
    storage_timeout: Duration = Duration(0.5)
    default_max_tokens: int = 512
    """Completion tokens assumed when a request sets no ``max_tokens`` (for token reservations)."""
    key_prefix: str = "tidegate"


class AdmissionSection(ConfigStruct):
    """The three top-level keys admission reads, as one struct (the root config has the same)."""

    limits: list[LimitRule] = msgspec.field(default_factory=list)
    protect: list[ProtectRule] = msgspec.field(default_factory=list)
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)


class AdmissionSource(Protocol):
    """Anything with the admission keys: :class:`AdmissionSection` or the root config."""

    @property
    def limits(self) -> Sequence[LimitRule]: ...
    @property
    def protect(self) -> Sequence[ProtectRule]: ...
    @property
    def admission(self) -> AdmissionConfig: ...


def validate_admission(cfg: AdmissionSource, root: object | None = None) -> list[str]:
    """Semantic checks msgspec cannot express; returns every problem found, none raised."""
    issues: list[str] = []
    names: dict[str, str] = {}
    for section, rules in (("limits", cfg.limits), ("protect", cfg.protect)):
        for index, rule in enumerate(rules):
            where = f"$.{section}[{index}]"
            issues.extend(_check_rule(rule, where, protect=section == "protect"))
            label = rule.name or f"{section}[{index}]"
            if label in names:
                issues.append(
                    f"Expected unique rule names, got `{label}` twice (also at `{names[label]}`)"
                    f" - at `{where}.name`"
                )
            names[label] = where
    issues.extend(_check_settings(cfg.admission))
    return issues


def _check_rule(rule: LimitRule, where: str, *, protect: bool) -> list[str]:
    issues: list[str] = []
    key = rule.key
    if key.startswith("header:"):
        if not _HEADER_NAME.match(key[7:]):
            issues.append(
                f"Expected `header:NAME` with a valid header name, got `{key}` - at `{where}.key`"
            )
    elif key not in KEY_KINDS:
        issues.append(
            f"Expected one of `ip`, `api_key`, `user`, `tenant`, `global` or `header:NAME`,"
            f" got `{key}` - at `{where}.key`"
        )
    if rule.requests is None and rule.tokens is None and rule.concurrency is None:
        issues.append(
            f"Expected at least one of `requests`, `tokens` or `concurrency`, got none - at `{where}`"
        )
    if rule.burst is not None:
        if rule.burst < 1:
            issues.append(f"Expected `int` >= 1, got `{rule.burst}` - at `{where}.burst`")
        if rule.requests is None and rule.tokens is None:
            issues.append(
                f"Expected `burst` together with `requests` or `tokens` (the rate that refills it),"
                f" got neither - at `{where}.burst`"
            )
        elif rule.requests is not None and rule.tokens is not None:
            issues.append(
                "Expected `burst` with only one of `requests` or `tokens` (it takes that rate's unit),"
                f" got both - at `{where}.burst`"
            )
    for field in ("requests", "tokens"):
        rate: Rate | None = getattr(rule, field)
        if rate is not None and any(amount < 1 for amount, _, _ in rate.items):
            issues.append(f"Expected a rate with amounts >= 1, got `{rate}` - at `{where}.{field}`")
    if isinstance(rule.concurrency, int) and rule.concurrency < 1:
        issues.append(f"Expected `int` >= 1, got `{rule.concurrency}` - at `{where}.concurrency`")
    if rule.concurrency == "auto" and key != "global":
        issues.append(
            "Expected `concurrency: auto` on a `global` key (it protects an upstream, optionally per"
            f" `scope`), got key `{key}` - at `{where}.concurrency`"
        )
    if rule.adaptive is not None:
        if rule.concurrency != "auto":
            issues.append(
                f"Expected `adaptive` only with `concurrency: auto`, got `concurrency:"
                f" {rule.concurrency}` - at `{where}.adaptive`"
            )
        issues.extend(_check_adaptive(rule.adaptive, f"{where}.adaptive"))
    if rule.queue < 0:
        issues.append(f"Expected `int` >= 0, got `{rule.queue}` - at `{where}.queue`")
    elif rule.queue > 0 and rule.concurrency is None:
        issues.append(
            f"Expected `queue` together with `concurrency`, got `queue: {rule.queue}` alone"
            f" - at `{where}.queue`"
        )
    if rule.queue_timeout <= 0 and rule.queue > 0:
        issues.append(
            f"Expected a duration > 0, got `{float(rule.queue_timeout)}s` - at `{where}.queue_timeout`"
        )
    scope = rule.scope
    if scope is not None:
        if protect:
            issues.append(
                f"Expected no `scope` on a protect rule (its `path` is the scope), got `{scope}`"
                f" - at `{where}.scope`"
            )
        elif scope not in SCOPE_KINDS and not scope.startswith("/"):
            issues.append(
                "Expected `surface`, `model`, `workflow` or a path glob starting with `/`,"
                f" got `{scope}` - at `{where}.scope`"
            )
    if isinstance(rule, ProtectRule):
        paths = [rule.path] if isinstance(rule.path, str) else rule.path
        if not paths:
            issues.append(f"Expected at least one path glob, got `[]` - at `{where}.path`")
        for item in paths:
            if not item.startswith("/"):
                issues.append(
                    f"Expected a path glob starting with `/`, got `{item}` - at `{where}.path`"
                )
        if rule.tokens is not None:
            issues.append(
                "Expected no `tokens` on a protect rule (host routes have no token estimate),"
                f" got `{rule.tokens}` - at `{where}.tokens`"
            )
    return issues


def _check_adaptive(adaptive: AdaptiveConfig, where: str) -> list[str]:
    issues: list[str] = []
    if adaptive.min < 1:
        issues.append(f"Expected `int` >= 1, got `{adaptive.min}` - at `{where}.min`")
    if not adaptive.min <= adaptive.initial <= adaptive.max:
        issues.append(
            f"Expected `min` <= `initial` <= `max`, got {adaptive.min} / {adaptive.initial} /"
            f" {adaptive.max} - at `{where}`"
        )
    if adaptive.tolerance < 1:
        issues.append(f"Expected `float` >= 1, got `{adaptive.tolerance}` - at `{where}.tolerance`")
    if not 0 < adaptive.smoothing <= 1:
        issues.append(
            f"Expected `float` in (0, 1], got `{adaptive.smoothing}` - at `{where}.smoothing`"
        )
    if not 0 < adaptive.backoff < 1:
        issues.append(
            f"Expected `float` in (0, 1), got `{adaptive.backoff}` - at `{where}.backoff`"
        )
    if adaptive.samples < 1:
        issues.append(f"Expected `int` >= 1, got `{adaptive.samples}` - at `{where}.samples`")
    if adaptive.baseline_window <= 0:
        issues.append(
            f"Expected a duration > 0, got `{float(adaptive.baseline_window)}s`"
            f" - at `{where}.baseline_window`"
        )
    return issues


def _check_settings(settings: AdmissionConfig) -> list[str]:
    issues: list[str] = []
    where = "$.admission"
    scheme = settings.storage.partition("://")[0]
    if "://" not in settings.storage or scheme not in _STORAGE_SCHEMES:
        issues.append(
            "Expected a storage URI like `async+memory://` or `async+redis://host:6379`,"
            f" got `{settings.storage}` - at `{where}.storage`"
        )
    for index, proxy in enumerate(settings.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            issues.append(
                f"Expected an IP address or CIDR like `10.0.0.0/8`, got `{proxy}`"
                f" - at `{where}.trusted_proxies[{index}]`"
            )
    if settings.priority_header is not None and not _HEADER_NAME.match(settings.priority_header):
        issues.append(
            f"Expected a header name, got `{settings.priority_header}` - at `{where}.priority_header`"
        )
    if settings.default_max_tokens < 0:
        issues.append(
            f"Expected `int` >= 0, got `{settings.default_max_tokens}`"
            f" - at `{where}.default_max_tokens`"
        )
    if settings.storage_timeout <= 0:
        issues.append(
            f"Expected a duration > 0, got `{float(settings.storage_timeout)}s`"
            f" - at `{where}.storage_timeout`"
        )
    return issues
