from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tidegate.cli import main


def test_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("models:\n  a: {url: 'http://127.0.0.1:8001/v1'}\n")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_check_prints_every_issue_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("models:\n  a: {url: 'http://x/v1', timeot: 1s}\nprefx: /ai\n")
    result = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "check", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"Unknown field `timeot` - at `$.models.a` (did you mean `timeout`?) ({path})",
        f"Unknown field `prefx` - at `$` (did you mean `prefix`?) ({path})",
    ]
