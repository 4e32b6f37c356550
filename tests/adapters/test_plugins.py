"""Both host adapters are plugins: registered by entry point, built on tidegate's public API only."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import tidegate

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_registered_under_the_plugins_group() -> None:
    found = {ep.name: ep for ep in entry_points(group="tidegate.plugins")}
    assert {"fastapi", "flask"} <= set(found)
    import tidegate_fastapi
    import tidegate_flask

    assert found["fastapi"].load() is tidegate_fastapi.mount
    assert found["flask"].load() is tidegate_flask.Tidegate


@pytest.mark.parametrize("package", ["tidegate_fastapi", "tidegate_flask"])
def test_imports_only_public_names(package: str) -> None:
    sources = sorted((PLUGINS / package / "src" / package).glob("*.py"))
    assert sources
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tidegate":
                assert node.module == "tidegate", f"{source.name} imports from `{node.module}`"
                for alias in node.names:
                    assert alias.name in tidegate.__all__, f"{source.name} imports non-public `{alias.name}`"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("tidegate."), f"{source.name} imports `{alias.name}`"
