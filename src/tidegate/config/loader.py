"""Read a config file into :class:`TidegateConfig`, reporting every problem at once.

We walk the struct tree ourselves instead of one ``msgspec.convert`` call because msgspec stops at
the first error and spells dict keys as ``[...]``; users fixing a file want all problems, each
with the exact path (``$.models.light.timeout``), what was expected and what was found, plus a
"did you mean" for misspelt keys. Leaves still go through ``msgspec.convert`` so its grammar and
constraints apply unchanged.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

import msgspec
import yaml

from ..errors import ConfigError
from .schema import TidegateConfig
from .types import dec_hook

__all__ = ["convert_section", "load_config", "parse_config"]

T = TypeVar("T")
Validator = Callable[[TidegateConfig], list[str]]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_MISSING = object()


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> TidegateConfig:
    """Load YAML, TOML or JSON (by suffix) with ``${ENV}`` / ``${ENV:-default}`` values."""
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file `{source}`: {exc.strerror or exc}") from exc
    suffix = file.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = msgspec.json.decode(text)
        else:
            raise ConfigError(
                f"Expected a config file ending in .yaml, .yml, .toml or .json, got `{file.name}`"
            )
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"Invalid YAML{where}: {problem} ({source})", source=source) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid TOML: {exc} ({source})", source=source) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"Invalid JSON: {exc} ({source})", source=source) from exc
    if data is None:
        data = {}
    return parse_config(data, source=source, env=env)


def parse_config(
    data: object, *, source: str | None = None, env: Mapping[str, str] | None = None
) -> TidegateConfig:
    """Build a config from already-parsed data (a dict), e.g. one built in Python."""
    issues: list[str] = []
    data = _interpolate(data, "$", os.environ if env is None else env, issues)
    if isinstance(data, dict):
        data = {**data, "source": None}
    config = _convert(data, TidegateConfig, "$", issues)
    if config is not _MISSING and not issues:
        assert isinstance(config, TidegateConfig)
        config.source = source
        for validate in _validators():
            issues.extend(validate(config))
    if issues:
        suffix = f" ({source})" if source else ""
        raise ConfigError([issue + suffix for issue in issues], source=source)
    assert isinstance(config, TidegateConfig)
    return config


def convert_section(data: object, tp: type[T], path: str, *, source: str | None = None) -> T:
    """Convert one section (e.g. a Dify node's data) with the same paths and messages."""
    issues: list[str] = []
    value = _convert(data, tp, path, issues)
    if issues:
        suffix = f" ({source})" if source else ""
        raise ConfigError([issue + suffix for issue in issues], source=source)
    return typing.cast(T, value)


def _validators() -> list[Validator]:
    # Imported here so each capability's checks live with its config module.
    from .validate import VALIDATORS

    return VALIDATORS


def _interpolate(value: object, path: str, env: Mapping[str, str], issues: list[str]) -> object:
    if isinstance(value, str) and "${" in value:

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found is None or (found == "" and default is not None):
                if default is None:
                    issues.append(
                        f"Expected environment variable `{name}` to be set, got nothing - at `{path}`"
                    )
                    return ""
                return default
            return found

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {key: _interpolate(item, f"{path}.{key}", env, issues) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, f"{path}[{index}]", env, issues) for index, item in enumerate(value)]
    return value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}.get(
        type(value), type(value).__name__
    )


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    """The single Struct type a union admits, if any (so dict values can be walked into it)."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        structs = [arg for arg in typing.get_args(tp) if isinstance(arg, type) and issubclass(arg, msgspec.Struct)]
        others = [arg for arg in typing.get_args(tp) if arg is not type(None) and arg not in structs]
        if len(structs) == 1 and not any(typing.get_origin(o) is dict or o is dict for o in others):
            return structs[0]
    return None


def _convert(value: object, tp: Any, path: str, issues: list[str]) -> object:
    if typing.get_origin(tp) is typing.Annotated:
        return _leaf(value, tp, path, issues)
    struct = _struct_in(tp)
    if struct is not None and isinstance(value, dict):
        return _convert_struct(value, struct, path, issues)
    if struct is not None and value is None and struct is not tp:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and isinstance(value, dict) and args and _needs_walk(args[1]):
        out = {}
        for key, item in value.items():
            converted = _convert(item, args[1], f"{path}.{key}", issues)
            if converted is not _MISSING:
                out[_leaf(key, args[0], path, issues)] = converted
        return out
    if origin is list and isinstance(value, list) and args and _needs_walk(args[0]):
        items = [_convert(item, args[0], f"{path}[{index}]", issues) for index, item in enumerate(value)]
        return [item for item in items if item is not _MISSING]
    return _leaf(value, tp, path, issues)


def _needs_walk(tp: Any) -> bool:
    if _struct_in(tp) is not None:
        return True
    origin = typing.get_origin(tp)
    return origin in (dict, list) and any(_needs_walk(arg) for arg in typing.get_args(tp))


def _convert_struct(
    value: dict[str, object], tp: type[msgspec.Struct], path: str, issues: list[str]
) -> object:
    fields = {field.encode_name: field for field in msgspec.structs.fields(tp)}
    kwargs: dict[str, object] = {}
    failed = False
    for key, item in value.items():
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            known = [name for name in fields if name != "source"]
            hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            did_you_mean = f" (did you mean `{hint[0]}`?)" if hint else f"; expected one of {', '.join(f'`{k}`' for k in known)}"
            issues.append(f"Unknown field `{key}` - at `{path}`{did_you_mean}")
            failed = True
            continue
        converted = _convert(item, field.type, f"{path}.{key}", issues)
        if converted is _MISSING:
            failed = True
        else:
            kwargs[field.name] = converted
    for name, field in fields.items():
        if field.required and name not in value:
            issues.append(f"Object missing required field `{name}` - at `{path}`")
            failed = True
    if failed:
        return _MISSING
    try:
        return tp(**kwargs)
    except (ValueError, TypeError) as exc:
        issues.append(f"{exc} - at `{path}`")
        return _MISSING


def _leaf(value: object, tp: Any, path: str, issues: list[str]) -> object:
    try:
        return msgspec.convert(value, tp, dec_hook=dec_hook, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, sep, where = text.rpartition(" - at `$")
        if sep:
            issues.append(f"{message} - at `{path}{where}")
        else:
            issues.append(f"{text} - at `{path}`")
        return _MISSING
