"""HTTP caching vocabulary: request ``Cache-Control`` in, RFC 9211 ``Cache-Status`` out.

Clients already know these headers (curl, proxies, SDK ``extra_headers``), so per-request control
needs no tidegate-specific API: ``no-cache`` refreshes, ``no-store`` bypasses, ``max-age=N``
refuses answers older than N seconds and ``only-if-cached`` never calls the model.
"""

from __future__ import annotations

import msgspec

__all__ = ["CACHE_NAME", "Directives", "cache_status", "parse_directives"]

CACHE_NAME = "tidegate"


class Directives(msgspec.Struct, frozen=True, gc=False):
    no_cache: bool = False
    no_store: bool = False
    max_age: float | None = None
    only_if_cached: bool = False


NONE = Directives()


def parse_directives(cache_control: str | None, pragma: str | None = None) -> Directives:
    """Request directives we honour; unknown ones are ignored as RFC 9111 asks."""
    if not cache_control:
        if pragma and "no-cache" in pragma.lower():
            return Directives(no_cache=True)
        return NONE
    no_cache = no_store = only_if_cached = False
    max_age: float | None = None
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "only-if-cached":
            only_if_cached = True
        elif name == "max-age":
            value = value.strip().strip('"')
            if value.isdigit():
                seconds = float(value)
                max_age = seconds if max_age is None else min(max_age, seconds)
    if max_age == 0:
        no_cache = True
    return Directives(no_cache=no_cache, no_store=no_store, max_age=max_age, only_if_cached=only_if_cached)


def cache_status(
    *,
    hit: bool = False,
    fwd: str | None = None,
    stored: bool = False,
    collapsed: bool = False,
    ttl: float | None = None,
    detail: str | None = None,
) -> str:
    """One ``Cache-Status`` member, e.g. ``tidegate; hit; ttl=540; detail=semantic``."""
    parts = [CACHE_NAME]
    if hit:
        parts.append("hit")
    if fwd is not None:
        parts.append(f"fwd={fwd}")
    if ttl is not None:
        parts.append(f"ttl={max(0, int(ttl))}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if detail is not None:
        parts.append(f"detail={detail}")
    return "; ".join(parts)
