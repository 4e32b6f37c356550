"""Limit rules compiled once: who a rule counts (key), which requests it sees (scope), and the
meters and gates that count them.

Everything that can be decided from the config alone — globs to regexes, rates to `limits` items,
key kinds to branch codes, label strings, metric children — is decided here, so the request path
only compares, concatenates and looks up.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING

from limits.aio.storage import Storage

from ..config.admission import LimitRule, ProtectRule
from ..config.types import Rate
from .gate import GatePool
from .meters import Kind, Meter, TokenMeter, WindowMeter, bucket_meter, rate_items
from .metrics import RuleMetrics

if TYPE_CHECKING:
    from .core import RequestInfo

__all__ = ["CompiledRule", "compile_glob"]

_MAX_KEY_VALUE = 128  # identities come from clients; bound what one can make us store


def compile_glob(patterns: list[str]) -> re.Pattern[str]:
    """Path globs (``/api/*``; ``*`` spans ``/``) as one anchored regex."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class CompiledRule:
    """One rule, ready for the request path. ``bind`` attaches storage at ``start()``."""

    __slots__ = (
        "config", "gate_pool", "header", "key_kind", "label", "meters", "metrics", "paths",
        "scope_kind",
    )  # fmt: skip

    def __init__(self, config: LimitRule, label: str, metrics: RuleMetrics) -> None:
        self.config = config
        self.label = label
        self.metrics = metrics
        key = config.key
        self.key_kind = "header" if key.startswith("header:") else key
        self.header = key[7:].lower() if key.startswith("header:") else ""
        scope = config.scope
        self.paths: re.Pattern[str] | None = None
        self.scope_kind = scope if scope in ("surface", "model", "workflow") else None
        if isinstance(config, ProtectRule):
            self.paths = compile_glob(
                [config.path] if isinstance(config.path, str) else config.path
            )
        elif scope is not None and scope.startswith("/"):
            self.paths = compile_glob([scope])
        self.meters: tuple[Meter, ...] = ()
        self.gate_pool: GatePool | None = None
        if config.concurrency is not None:
            self.gate_pool = GatePool(
                config.concurrency,
                queue=config.queue,
                queue_timeout=float(config.queue_timeout),
                adaptive=config.adaptive,
                observer=metrics,
            )

    @property
    def needs_ip(self) -> bool:
        return self.key_kind != "global"

    def bind(self, storage: Storage, strategy: str, key_prefix: str) -> None:
        rule = self.config
        namespace = f"{key_prefix}/{self.label}"
        meters: list[Meter] = []
        rates: tuple[tuple[Kind, Rate | None], ...] = (
            ("requests", rule.requests),
            ("tokens", rule.tokens),
        )
        for kind, rate in rates:
            if rate is None:
                continue
            # Repeated parts ("1/minute;1/minute") would share one counter and count twice.
            items = tuple(
                dict.fromkeys(getattr(rate, "items", None) or Rate.parse(str(rate)).items)
            )
            label = f"{self.label}.{kind}"
            ns = f"{namespace}/{kind}"
            if rule.burst is not None:
                per_second = Rate.parse(str(rate)).per_second()
                meters.append(
                    bucket_meter(
                        storage, rule.burst, per_second, namespace=ns, kind=kind, label=label
                    )
                )
            elif kind == "tokens":
                meters.extend(
                    TokenMeter(storage, item, label=label) for item in rate_items(items, ns)
                )
            else:
                meters.extend(
                    WindowMeter(storage, strategy, item, kind="requests", label=label)
                    for item in rate_items(items, ns)
                )
        # Longest window first: when a long budget is spent, the refusal reports its (long)
        # wait instead of a short window's that the client would retry into and fail again.
        self.meters = tuple(sorted(meters, key=lambda meter: -meter.window))

    def applies(self, info: RequestInfo) -> bool:
        paths = self.paths
        if paths is not None and paths.match(info.path) is None:
            return False
        scope = self.scope_kind
        if scope == "model":
            return bool(info.model)
        if scope == "workflow":
            return bool(info.workflow)
        return True

    def ident(self, info: RequestInfo, ip: str) -> str:
        """The identity this rule counts the request under (key value, then scope value)."""
        kind = self.key_kind
        if kind == "global":
            value = "*"
        elif kind == "ip":
            value = ip
        else:
            if kind == "api_key":
                found = info.api_key_name
            elif kind == "tenant":
                found = info.tenant or info.api_key_name
            elif kind == "user":
                found = info.user
            else:
                found = info.headers.get(self.header)
            # Anonymous callers are counted per address, not all in one shared bucket.
            value = found[:_MAX_KEY_VALUE] if found else "ip:" + ip
        scope = self.scope_kind
        if scope is None:
            return value
        if scope == "surface":
            return f"{value}|s={info.surface}"
        if scope == "model":
            return f"{value}|m={(info.model or '')[:_MAX_KEY_VALUE]}"
        return f"{value}|w={(info.workflow or '')[:_MAX_KEY_VALUE]}"


def gate_order(rule: CompiledRule) -> int:
    """Per-client caps are entered before shared ones, in one fixed order for all requests.

    A fixed order means no two requests can each hold what the other waits for; per-client
    first means a client queued behind its own cap doesn't sit on a global slot meanwhile.
    """
    return 1 if rule.key_kind == "global" else 0
