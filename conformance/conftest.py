"""Loads the ``tidegate_conformance`` pytest plugin for this folder (unless ``-p`` already did)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # the plugin package lives beside this file


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if not pluginmanager.has_plugin("tidegate_conformance"):
        import tidegate_conformance

        pluginmanager.register(tidegate_conformance, "tidegate_conformance")
