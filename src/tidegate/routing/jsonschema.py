"""The subset of JSON Schema that ``response_format: json_schema`` answers are checked against.

Structured-output schemas are small and use a handful of keywords (OpenAI's strict mode accepts
little more), so a ~100-line checker covers them without another dependency: ``type`` (incl.
lists), ``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``, ``const``,
``anyOf``/``oneOf``/``allOf``, string/array/number bounds, and local ``$ref`` into ``$defs``.
Unknown keywords are ignored (accepted), which errs toward *not* escalating.
"""

from __future__ import annotations

from typing import Any

__all__ = ["first_error"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def first_error(instance: Any, schema: Any, *, root: Any = None, path: str = "$") -> str | None:
    """The first place ``instance`` breaks ``schema``, as ``"$.a[0]: expected ..."``; None if valid."""
    if schema is True or not isinstance(schema, dict):
        return None
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        if target is None:
            return None
        return first_error(instance, target, root=root, path=path)
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_is_type(instance, name) for name in names):
            return f"{path}: expected {'/'.join(map(str, names))}, got {_type_name(instance)}"
    if "enum" in schema and instance not in schema["enum"]:
        return f"{path}: expected one of {schema['enum']!r}, got {instance!r}"
    if "const" in schema and instance != schema["const"]:
        return f"{path}: expected {schema['const']!r}, got {instance!r}"
    for keyword in ("allOf", "anyOf", "oneOf"):
        options = schema.get(keyword)
        if not isinstance(options, list):
            continue
        errors = [first_error(instance, option, root=root, path=path) for option in options]
        passed = sum(error is None for error in errors)
        if keyword == "allOf" and passed < len(options):
            return next(error for error in errors if error is not None)
        if keyword == "anyOf" and options and passed == 0:
            return errors[0]
        if keyword == "oneOf" and options and passed != 1:
            return f"{path}: expected exactly one `oneOf` branch to match, {passed} did"
    if isinstance(instance, dict):
        return _object_error(instance, schema, root, path)
    if isinstance(instance, list):
        return _array_error(instance, schema, root, path)
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            return f"{path}: expected at least {schema['minLength']} characters"
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            return f"{path}: expected at most {schema['maxLength']} characters"
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            return f"{path}: expected >= {schema['minimum']}, got {instance}"
        if "maximum" in schema and instance > schema["maximum"]:
            return f"{path}: expected <= {schema['maximum']}, got {instance}"
    return None


def _object_error(
    instance: dict[str, Any], schema: dict[str, Any], root: Any, path: str
) -> str | None:
    for name in schema.get("required", ()):
        if name not in instance:
            return f"{path}: missing required property `{name}`"
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for name, value in instance.items():
        if name in properties:
            error = first_error(value, properties[name], root=root, path=f"{path}.{name}")
        elif extra is False:
            error = f"{path}: unexpected property `{name}`"
        else:
            error = first_error(value, extra, root=root, path=f"{path}.{name}")
        if error is not None:
            return error
    return None


def _array_error(instance: list[Any], schema: dict[str, Any], root: Any, path: str) -> str | None:
    if len(instance) < schema.get("minItems", 0):
        return f"{path}: expected at least {schema['minItems']} items, got {len(instance)}"
    if "maxItems" in schema and len(instance) > schema["maxItems"]:
        return f"{path}: expected at most {schema['maxItems']} items, got {len(instance)}"
    items = schema.get("items")
    if isinstance(items, dict):
        for index, value in enumerate(instance):
            error = first_error(value, items, root=root, path=f"{path}[{index}]")
            if error is not None:
                return error
    return None


def _is_type(instance: Any, name: object) -> bool:
    if name in ("integer", "number") and isinstance(instance, bool):
        return False
    if name == "integer" and isinstance(instance, float):
        return instance.is_integer()
    kinds = _TYPES.get(str(name))
    return kinds is None or isinstance(instance, kinds)


def _type_name(instance: Any) -> str:
    for name, kinds in _TYPES.items():
        if isinstance(instance, kinds) and not (
            name in ("integer", "number") and isinstance(instance, bool)
        ):
            return name
    return type(instance).__name__


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        return None  # remote refs are not fetched: treated as "anything goes"
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
