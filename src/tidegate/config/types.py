"""Value types that config files spell as strings: durations, byte sizes and rates.

They subclass builtins so code using them needs no unwrapping (a ``Duration`` *is* seconds as a
float); the loader turns the strings into them through ``msgspec``'s ``dec_hook``, so a bad value is
reported with its path like any other type error.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

__all__ = ["ByteSize", "ConfigStruct", "Duration", "Rate", "dec_hook"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
    "gb": 1000**3, "gib": 1024**3,
}  # fmt: skip
_RATE_ITEM = re.compile(
    r"^\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+)?\s*(second|minute|hour|day|month|year)s?\s*$",
    re.IGNORECASE,
)


class ConfigStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: unknown keys are errors, options are keyword-only."""


class Duration(float):
    """Seconds. Written ``200ms``, ``2s``, ``10m``, ``1h``, ``1d`` or a bare number of seconds."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(f"Expected a duration like `200ms`, `2s` or `10m`, got `{value}`")
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        else:
            raise ValueError(f"Expected a duration like `200ms`, `2s` or `10m`, got `{value!r}`")
        if seconds < 0:
            raise ValueError(f"Expected a duration >= 0, got `{value!r}`")
        return cls(seconds)

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


class ByteSize(int):
    """Bytes. Written ``512``, ``64kb``, ``4MB``, ``1MiB``."""

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError(f"Expected a size like `4MB` or `512kb`, got `{value}`")
        if isinstance(value, int) and value >= 0:
            return cls(value)
        if isinstance(value, str) and (match := _SIZE.match(value)):
            unit = match.group(2).lower() if match.group(2) else None
            return cls(int(float(match.group(1)) * _SIZE_UNITS[unit]))
        raise ValueError(f"Expected a size like `4MB` or `512kb`, got `{value!r}`")


class Rate(str):
    """A rate in the `limits` library's syntax: ``100/minute``, ``10/second;1000/hour``.

    Kept as the normalized string (what ``limits.parse_many`` takes); ``items`` gives
    ``(amount, multiples, granularity)`` triples for code that needs the numbers.
    """

    items: tuple[tuple[int, int, str], ...]

    @classmethod
    def parse(cls, value: object) -> Rate:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Expected a rate like `100/minute` or `10/second;1000/hour`, got `{value!r}`")
        items: list[tuple[int, int, str]] = []
        for part in re.split(r"[;,]", value):
            match = _RATE_ITEM.match(part)
            if match is None:
                raise ValueError(
                    f"Expected a rate like `100/minute` or `10/second;1000/hour`, got `{value!r}`"
                )
            items.append((int(match.group(1)), int(match.group(2) or 1), match.group(3).lower()))
        text = ";".join(
            f"{amount}/{'' if multiples == 1 else f'{multiples} '}{unit}"
            for amount, multiples, unit in items
        )
        rate = cls(text)
        rate.items = tuple(items)
        return rate

    def per_second(self) -> float:
        """The tightest of the items as a steady rate, for token-bucket refill and estimates."""
        seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2_592_000,
                   "year": 31_536_000}  # fmt: skip
        return min(amount / (multiples * seconds[unit]) for amount, multiples, unit in self.items)


_PARSERS: dict[type, Any] = {Duration: Duration.parse, ByteSize: ByteSize.parse, Rate: Rate.parse}


def dec_hook(tp: type, obj: object) -> object:
    """msgspec hook: build our string-spelled value types; everything else is not ours."""
    parser = _PARSERS.get(tp)
    if parser is None:
        raise NotImplementedError(f"no decoder for {tp!r}")
    return parser(obj)
