"""The code sandbox and code nodes: isolation, limits, output typing, JavaScript via node."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tidegate.engine import (
    CodeLimits,
    CodeSandbox,
    RunLimits,
    Services,
    WorkflowRunner,
    compile_workflow,
)
from tidegate.engine.nodes.base import NodeFailure
from tidegate.errors import UsageError

pytestmark = pytest.mark.usefixtures("no_leaks")

FAST = CodeLimits(cpu_time=1, wall_time=3, memory=128 * 1024 * 1024)


async def test_runs_python_in_another_process(sandbox: CodeSandbox) -> None:
    os.environ["TIDEGATE_TEST_SECRET"] = "host-only"
    try:
        code = (
            "import os\n"
            "def main(a: int, b: str) -> dict:\n"
            "    print('noise on stdout must not break the protocol')\n"
            "    return {'sum': a + 1, 'b': b, 'pid': os.getpid(), 'env': sorted(os.environ)}\n"
        )
        result = await sandbox.run_python(code, {"a": 41, "b": "x"})
    finally:
        del os.environ["TIDEGATE_TEST_SECRET"]
    assert result["sum"] == 42 and result["b"] == "x"
    assert result["pid"] != os.getpid()
    assert "TIDEGATE_TEST_SECRET" not in result["env"]


async def test_each_job_starts_clean(sandbox: CodeSandbox) -> None:
    poison = "import builtins, json\ndef main():\n    builtins.marker = 1\n    json.poisoned = 1\n    return {'ok': True}\n"
    assert await sandbox.run_python(poison, {}) == {"ok": True}
    check = "import builtins, json\ndef main():\n    return {'clean': not hasattr(builtins, 'marker') and not hasattr(json, 'poisoned')}\n"
    for _ in range(3):  # whichever worker serves it
        assert await sandbox.run_python(check, {}) == {"clean": True}


@pytest.mark.parametrize(
    ("code", "error_type", "message"),
    [
        ("def main():\n    while True:\n        pass\n", "CPUTimeExceeded", "the code used more than 1"),
        ("import time\ndef main():\n    time.sleep(30)\n", "WallTimeExceeded", "the code ran longer than 3s"),
        ("def main():\n    x = bytearray(1024 * 1024 * 1024)\n    return {}\n", "MemoryError", "the code exceeded its memory limit"),
        ("def main():\n    raise ValueError('boom')\n", "ValueError", "ValueError: boom (line 2)"),
        ("def main():\n    return [1]\n", "TypeError", "TypeError: main() must return a dict, got list"),
        ("x = 1\n", "NameError", "NameError: the code must define a function `main`"),
        ("def main():\n    with open('out.txt', 'w') as f:\n        f.write('x' * 10)\n    return {}\n", "OSError",
         "OSError: [Errno 27] File too large"),
        ("import os\ndef main():\n    os._exit(3)\n", "Crashed", "the code exited without a result"),
    ],
)
async def test_limits_and_errors(sandbox: CodeSandbox, code: str, error_type: str, message: str) -> None:
    with pytest.raises(NodeFailure) as info:
        await sandbox.run_python(code, {}, limits=FAST)
    assert info.value.error_type == error_type
    assert str(info.value).startswith(message)
    # The worker survives every job failure and serves the next one.
    assert await sandbox.run_python("def main():\n    return {'ok': 1}\n", {}) == {"ok": 1}


async def test_cancelling_a_job_kills_its_worker(sandbox: CodeSandbox) -> None:
    import asyncio

    task = asyncio.create_task(sandbox.run_python("import time\ndef main():\n    time.sleep(30)\n", {}))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await sandbox.run_python("def main():\n    return {'after': True}\n", {}) == {"after": True}


async def test_lifecycle_errors() -> None:
    box = CodeSandbox()
    with pytest.raises(UsageError, match="CodeSandbox is unopened; start\\(\\) it first"):
        await box.run_python("def main():\n    return {}\n", {})
    await box.start()
    await box.close()
    with pytest.raises(UsageError, match="CodeSandbox is closed"):
        await box.run_python("def main():\n    return {}\n", {})


@pytest.mark.skipif(shutil.which("node") is None, reason="needs a node binary")
async def test_javascript(sandbox: CodeSandbox) -> None:
    code = "function main({a, b}) {\n  console.log('ignored');\n  return {sum: a + b, s: `${a}`};\n}"
    assert await sandbox.run_javascript(code, {"a": 2, "b": 3}) == {"sum": 5, "s": "2"}
    with pytest.raises(NodeFailure, match=r"^oops$") as info:
        await sandbox.run_javascript("function main() { throw new RangeError('oops') }", {})
    assert info.value.error_type == "RangeError"
    with pytest.raises(NodeFailure) as info:
        await sandbox.run_javascript("function main() { while (true) {} }", {}, limits=FAST)
    assert info.value.error_type == "CPUTimeExceeded"


def code_dsl(kit: Any, code: str, outputs: dict[str, Any], language: str = "python3") -> dict[str, Any]:
    return kit.dsl(
        [kit.start("x"),
         kit.node("code", "code", "Code", code_language=language, code=code, outputs=outputs,
                  variables=[{"variable": "arg1", "value_selector": ["start", "x"]}]),
         kit.end(**{name: ["code", name] for name in outputs})],
        kit.chain("start", "code", "end"),
    )


async def test_code_node_types_its_outputs(kit: Any, sandbox: CodeSandbox) -> None:
    code = "def main(arg1: str) -> dict:\n    return {'upper': arg1.upper(), 'n': len(arg1), 'parts': list(arg1), 'meta': {'k': 1}}\n"
    outputs = {"upper": {"type": "string"}, "n": {"type": "number"}, "parts": {"type": "array[string]"},
               "meta": {"type": "object", "children": {"k": {"type": "number"}}}}
    runner = WorkflowRunner(compile_workflow(code_dsl(kit, code, outputs)), services=Services(code=sandbox))
    result = await runner.run_blocking({"x": "abc"})
    assert result.outputs == {"upper": "ABC", "n": 3, "parts": ["a", "b", "c"], "meta": {"k": 1}}
    wrong = code_dsl(kit, "def main(arg1):\n    return {'n': 'three'}\n", {"n": {"type": "number"}, "gone": {"type": "string"}})
    failed = await WorkflowRunner(compile_workflow(wrong), services=Services(code=sandbox)).run_blocking({"x": "a"})
    assert failed.status == "failed"
    assert failed.error == "node `code` (Code) failed: output `n` must be a number, got str"


async def test_failing_code_node_is_a_clear_error(kit: Any, sandbox: CodeSandbox) -> None:
    code = "def main(arg1):\n    return {'r': 1 / 0}\n"
    runner = WorkflowRunner(compile_workflow(code_dsl(kit, code, {"r": {"type": "number"}})),
                            services=Services(code=sandbox), limits=RunLimits(timeout=10))
    events = await kit.collect(runner.run({"x": "a"}))
    node = next(e for e in events if e.kind == "node_finished" and e.node_id == "code")
    assert node.status == "failed"
    assert node.error == "ZeroDivisionError: division by zero (line 2)"
    assert events[-1].status == "failed"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs a node binary")
async def test_javascript_code_node(kit: Any, sandbox: CodeSandbox) -> None:
    code = "function main({arg1}) { return {out: arg1.split('').reverse().join('')} }"
    runner = WorkflowRunner(compile_workflow(code_dsl(kit, code, {"out": {"type": "string"}}, "javascript")),
                            services=Services(code=sandbox))
    assert (await runner.run_blocking({"x": "abc"})).outputs == {"out": "cba"}


async def test_looping_jinja_renders_in_the_sandbox(kit: Any, sandbox: CodeSandbox) -> None:
    data = kit.dsl(
        [kit.node("start", "start", "Start", variables=[{"variable": "xs", "type": "json_object"}]),
         kit.tpl("t", "{% for k, v in xs.items() %}{{ k }}={{ v }};{% endfor %}", xs=["start", "xs"]),
         kit.end(o=["t", "output"])],
        kit.chain("start", "t", "end"),
    )
    runner = WorkflowRunner(compile_workflow(data), services=Services(code=sandbox))
    assert (await runner.run_blocking({"xs": {"a": 1, "b": 2}})).outputs == {"o": "a=1;b=2;"}
    endless = kit.dsl(
        [kit.start(), kit.tpl("t", "{% for i in range(99999) %}{% for j in range(99999) %}.{% endfor %}{% endfor %}"),
         kit.end(o=["t", "output"])],
        kit.chain("start", "t", "end"),
    )
    slow = WorkflowRunner(compile_workflow(endless), services=Services(code=sandbox, code_limits=FAST))
    result = await slow.run_blocking({})
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("node `t` (t) failed: the code")
