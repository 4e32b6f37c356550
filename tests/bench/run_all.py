"""`make bench`: every benchmark in this folder, one after the other, each in its own process.

Each script measures against a baseline in the same run and prints its own table. Pass `--quick`
for a smoke run, or names (`overhead routing`) to run only some.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["overhead", "hosts", "admission", "routing", "cache", "knowledge", "engine", "agent"]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("-")] or ORDER
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    failed = []
    for name in [n for n in ORDER if n in wanted] + sorted(set(wanted) - set(ORDER)):
        script = found.get(name)
        if script is None:
            continue
        print(f"\n=== {script.name} {'(quick)' if quick else ''}", flush=True)
        started = time.perf_counter()
        cmd = [sys.executable, str(script), *(["--quick"] if quick else [])]
        code = subprocess.call(cmd, cwd=HERE.parents[1])
        print(f"=== {script.name}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
