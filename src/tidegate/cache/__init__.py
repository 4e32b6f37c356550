"""Response caching: exact and semantic TTL tiers, scoped so tenants never share answers.

:class:`ResponseCache` is the one object the Gateway holds; the rest are its parts, exported for
tests, tools and other surfaces (the Dify surface keys workflows with :func:`build_key`).
"""

from __future__ import annotations

from .control import Directives, cache_status, parse_directives
from .curated import CuratedAnswer, load_curated
from .entry import Entry
from .guard import refusal
from .keys import CacheKey, build_key
from .policy import THRESHOLDS, default_threshold
from .response import ResponseCache
from .text import features, normalize_question

__all__ = [
    "THRESHOLDS",
    "CacheKey",
    "CuratedAnswer",
    "Directives",
    "Entry",
    "ResponseCache",
    "build_key",
    "cache_status",
    "default_threshold",
    "features",
    "load_curated",
    "normalize_question",
    "parse_directives",
    "refusal",
]
