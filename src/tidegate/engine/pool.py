"""The variable pool of one run: node outputs plus the ``sys``, ``env`` and ``conversation`` scopes.

Values are plain Python data (str, numbers, bools, dicts, lists, None); a selector
``(owner, name, *path)`` reads ``owner``'s variable ``name`` and then walks ``path`` through dicts
and lists. Iterations and loops run their bodies in child pools: reads fall through to the parent,
writes of a body's own outputs stay in the child (so parallel items never see each other), and an
assigner writes where the variable lives (conversation variables always in the root).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["MISSING", "VariablePool"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class VariablePool:
    __slots__ = ("_scopes", "parent", "root")

    def __init__(self, parent: VariablePool | None = None) -> None:
        self._scopes: dict[str, dict[str, Any]] = {}
        self.parent = parent
        self.root: VariablePool = parent.root if parent is not None else self

    def child(self) -> VariablePool:
        return VariablePool(self)

    def set_outputs(self, owner: str, outputs: Mapping[str, Any]) -> None:
        """Publish a node's outputs (replacing any earlier run of it in this scope)."""
        self._scopes[owner] = dict(outputs)

    def set(self, owner: str, name: str, value: Any) -> None:
        scope = self._scopes.get(owner)
        if scope is None:
            self._scopes[owner] = {name: value}
        else:
            scope[name] = value

    def scope(self, owner: str) -> dict[str, Any]:
        """The variables of one owner visible from here (nearest scope wins per name)."""
        merged: dict[str, Any] = {}
        pool: VariablePool | None = self
        chain: list[dict[str, Any]] = []
        while pool is not None:
            found = pool._scopes.get(owner)
            if found is not None:
                chain.append(found)
            pool = pool.parent
        for found in reversed(chain):
            merged.update(found)
        return merged

    def has_owner(self, owner: str) -> bool:
        pool: VariablePool | None = self
        while pool is not None:
            if owner in pool._scopes:
                return True
            pool = pool.parent
        return False

    def get(self, selector: Sequence[str]) -> Any:
        """The value at ``selector``, or :data:`MISSING` when the variable or path is absent."""
        owner, name = selector[0], selector[1]
        pool: VariablePool | None = self
        while pool is not None:
            scope = pool._scopes.get(owner)
            if scope is not None and name in scope:
                value = scope[name]
                break
            pool = pool.parent
        else:
            return MISSING
        for part in selector[2:]:
            value = _step(value, part)
            if value is MISSING:
                return MISSING
        return value

    def value(self, selector: Sequence[str]) -> Any:
        """Like :meth:`get`, with an absent variable read as ``None`` (how templates see it)."""
        found = self.get(selector)
        return None if found is MISSING else found

    def assign(self, selector: Sequence[str], value: Any) -> None:
        """Overwrite an existing variable where it lives (assigner, loop variables)."""
        owner, name = selector[0], selector[1]
        if owner == "conversation":
            self.root.set(owner, name, value)
            return
        pool: VariablePool | None = self
        while pool is not None:
            scope = pool._scopes.get(owner)
            if scope is not None and name in scope:
                scope[name] = value
                return
            pool = pool.parent
        self.set(owner, name, value)


def _step(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part, MISSING)
    if isinstance(value, list | tuple) and part.lstrip("-").isdigit():
        index = int(part)
        return value[index] if -len(value) <= index < len(value) else MISSING
    return MISSING
