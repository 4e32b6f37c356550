from __future__ import annotations

import subprocess
import sys

import tidegate


def test_public_names_are_pinned() -> None:
    assert len(tidegate.__all__) == len(set(tidegate.__all__))
    assert set(tidegate.__all__) == {
        "AuthenticationError", "ConfigError", "Gateway", "NotFoundError", "Overloaded",
        "RateLimited", "RequestContext", "RequestError", "RouteUnavailable", "ShuttingDown",
        "TidegateConfig", "TidegateError", "TidegateMiddleware", "UpstreamError", "UpstreamTimeout",
        "UsageError", "WorkflowError", "__version__", "load_config",
    }  # fmt: skip
    for name in tidegate.__all__:
        assert getattr(tidegate, name) is not None


def test_errors_share_one_root() -> None:
    for name in tidegate.__all__:
        value = getattr(tidegate, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, tidegate.TidegateError), name
    assert issubclass(tidegate.ConfigError, ValueError)


def test_import_does_no_network_and_pulls_no_optional_extras() -> None:
    code = (
        "import socket, sys\n"
        "def deny(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = deny\n"
        "socket.getaddrinfo = deny\n"
        "import tidegate\n"
        "heavy = [m for m in ('uvicorn', 'openai', 'onnxruntime', 'torch', 'flask', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
