"""tidegate's conformance suite as a pytest plugin: every scenario against every host.

The scenarios (``conformance/test_*.py``) ask for a ``host`` fixture; this plugin parametrizes it
over the selected hosts and serves each one from a real server process on 127.0.0.1 (uvicorn for
ASGI hosts, waitress for WSGI hosts), all pointed at one LLM simulator process. One server per
host per session keeps the suite fast; scenarios that need a fresh process (lifespan) ask for
``host_spec`` and ``launch_host`` instead.

Run it for a third-party host adapter::

    pytest -p tidegate_conformance path/to/tidegate/conformance \\
        --tidegate-host mine=asgi:my_adapter.app:app --tidegate-hosts mine

The host app must serve the host routes listed in ``tidegate_conformance.apps.HOST_ROUTES`` and
attach tidegate (prefix from the config) using the config file named by ``TIDEGATE_CONFIG``.

Adding a capability's scenarios: put its config section in ``tidegate.yaml`` beside this file
(or pass ``--tidegate-config``) and add ``conformance/test_<capability>.py`` using ``host`` and the
client helpers in ``tidegate_conformance.clients`` (``openai_client``, ``dify_client``, ``curl_sse``…).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tidegate import load_config

from .clients import close_shared_clients
from .processes import PACKAGE_DIR, HostSpec, ServerProcess, free_port, simulator_command

__all__ = ["API_KEY", "BUILTIN_HOSTS", "HostSpec", "RunningHost", "Suite"]

API_KEY = "sk-conformance"
BUILTIN_HOSTS = (
    HostSpec("asgi", "asgi", "tidegate_conformance.apps.asgi_app:app",
             stopped_marker="Application shutdown complete"),
    HostSpec("starlette", "asgi", "tidegate_conformance.apps.starlette_app:app", ("starlette",),
             stopped_marker="Application shutdown complete"),
    HostSpec("fastapi", "asgi", "tidegate_conformance.apps.fastapi_app:app", ("tidegate_fastapi",),
             stopped_marker="Application shutdown complete"),
    HostSpec("flask", "wsgi", "tidegate_conformance.apps.flask_app:app", ("tidegate_flask", "waitress"),
             stopped_marker="tidegate stopped"),
)  # fmt: skip


@dataclass(frozen=True)
class RunningHost:
    """A host server that is up: where it listens and how to reach tidegate inside it."""

    spec: HostSpec
    url: str
    prefix: str = "/ai"
    api_key: str = API_KEY

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def surface(self) -> str:
        """Base URL of tidegate's surfaces in this host (``http://…/ai``)."""
        return self.url + self.prefix

    @property
    def api_base(self) -> str:
        """What an OpenAI client's ``base_url`` is set to."""
        return self.surface + "/v1"

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}


class Suite:
    """Session state: the simulator and one server per host, started on first use."""

    def __init__(self, config: pytest.Config) -> None:
        self.rootdir = Path(config.rootpath)
        self.config_file = Path(config.getoption("tidegate_config") or PACKAGE_DIR / "tidegate.yaml")
        extra = [HostSpec.parse(text) for text in config.getoption("tidegate_host") or []]
        known = {spec.name: spec for spec in (*BUILTIN_HOSTS, *extra)}
        chosen = config.getoption("tidegate_hosts")
        names = [n.strip() for n in chosen.split(",") if n.strip()] if chosen else list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise pytest.UsageError(f"Unknown conformance host(s) {unknown}; known: {sorted(known)}")
        self.hosts = [known[name] for name in names]
        self.needed: set[str] | None = None  # hosts the collected tests use (None: all)
        self._sim: ServerProcess | None = None
        self._servers: dict[str, ServerProcess] = {}

    @property
    def simulator(self) -> ServerProcess:
        if self._sim is None:
            port = free_port()
            self._sim = ServerProcess("simulator", simulator_command(port), "/v1/models", port=port)
            self._sim.launch().wait_ready()
        return self._sim

    @functools.cached_property
    def prefix(self) -> str:
        """Where the hosts mount tidegate: the prefix of the config they serve."""
        env = {**os.environ, "SIM_URL": "http://127.0.0.1:9/v1", "TIDEGATE_CONFORMANCE_KEY": API_KEY}
        return load_config(self.config_file, env=env).prefix

    def host_env(self) -> dict[str, str]:
        return {
            "TIDEGATE_CONFIG": str(self.config_file),
            "SIM_URL": self.simulator.url + "/v1",
            "TIDEGATE_CONFORMANCE_KEY": API_KEY,
        }

    def missing(self, spec: HostSpec) -> str | None:
        absent = [mod for mod in spec.requires if importlib.util.find_spec(mod) is None]
        return f"host `{spec.name}` needs {', '.join(absent)} (not installed)" if absent else None

    def process(self, spec: HostSpec, *, log_level: str = "warning") -> ServerProcess:
        """A new, not yet launched server process for ``spec``."""
        port = free_port()
        return ServerProcess(
            spec.name, spec.command(port, log_level=log_level), f"{self.prefix}/healthz",
            env=self.host_env(), cwd=self.rootdir, port=port,
        )  # fmt: skip

    def shared(self, spec: HostSpec) -> RunningHost:
        """The session's server for ``spec``; the first call boots every needed host at once."""
        if not self._servers:
            for other in self.hosts:
                wanted = self.needed is None or other.name in self.needed or other is spec
                if wanted and self.missing(other) is None:
                    self._servers[other.name] = self.process(other).launch()
        if spec.name not in self._servers:
            self._servers[spec.name] = self.process(spec).launch()
        server = self._servers[spec.name]
        server.wait_ready()
        return RunningHost(spec, server.url, self.prefix)

    def close(self) -> None:
        close_shared_clients()
        for server in self._servers.values():
            server.stop()
        if self._sim is not None:
            self._sim.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tidegate-conformance", "tidegate conformance suite")
    group.addoption("--tidegate-host", action="append", metavar="NAME=asgi|wsgi:MODULE:ATTR",
                    help="add a host app to run the scenarios against (repeatable)")  # fmt: skip
    group.addoption("--tidegate-hosts", metavar="NAMES",
                    help="comma-separated hosts to run (default: every known host)")  # fmt: skip
    group.addoption("--tidegate-config", metavar="PATH",
                    help="tidegate config the hosts serve (default: the suite's tidegate.yaml)")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: a scenario outside conformance/ that runs against every host"
    )


def _is_scenario(metafunc: pytest.Metafunc) -> bool:
    """Scenario files of this folder, or tests marked ``conformance`` elsewhere (a plugin's own)."""
    in_suite = PACKAGE_DIR.parent in Path(metafunc.definition.path).parents
    return in_suite or metafunc.definition.get_closest_marker("conformance") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not _is_scenario(metafunc):
        return
    if "host" in metafunc.fixturenames or "host_spec" in metafunc.fixturenames:
        suite = _suite(metafunc.config)
        names = [spec.name for spec in suite.hosts]
        if "host" in metafunc.fixturenames:
            metafunc.parametrize("host", names, indirect=True, scope="session", ids=names)
        else:
            metafunc.parametrize("host_spec", suite.hosts, ids=names)


_SUITE_KEY = pytest.StashKey[Suite]()


def _suite(config: pytest.Config) -> Suite:
    suite = config.stash.get(_SUITE_KEY, None)
    if suite is None:
        suite = config.stash[_SUITE_KEY] = Suite(config)
    return suite


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Note which hosts the selected tests use, so only those servers are booted."""
    params = [getattr(item, "callspec", None) for item in items]
    _suite(config).needed = {p.params["host"] for p in params if p is not None and "host" in p.params}


def pytest_unconfigure(config: pytest.Config) -> None:
    suite = config.stash.get(_SUITE_KEY, None)
    if suite is not None:
        suite.close()


@pytest.fixture(scope="session")
def conformance(pytestconfig: pytest.Config) -> Suite:
    """The suite's session state (simulator, host servers, config file)."""
    return _suite(pytestconfig)


@pytest.fixture(scope="session")
def host(request: pytest.FixtureRequest, conformance: Suite) -> RunningHost:
    """A running host server (parametrized over the selected hosts; one per session)."""
    spec = next(spec for spec in conformance.hosts if spec.name == request.param)
    reason = conformance.missing(spec)
    if reason:
        pytest.skip(reason)
    return conformance.shared(spec)


@pytest.fixture
def launch_host(conformance: Suite) -> Iterator[Callable[..., ServerProcess]]:
    """Start a fresh server for a host spec (stopped at the end of the test if still running)."""
    started: list[ServerProcess] = []

    def launch(spec: HostSpec, **kwargs: Any) -> ServerProcess:
        reason = conformance.missing(spec)
        if reason:
            pytest.skip(reason)
        server = conformance.process(spec, **kwargs).launch()
        started.append(server)
        return server.wait_ready()

    yield launch
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def simulator_url(conformance: Suite) -> str:
    """Base URL (``…/v1``) of the simulator every host talks to."""
    return conformance.simulator.url + "/v1"


def env_for_examples(conformance: Suite) -> dict[str, str]:
    """Environment for running the files in ``examples/`` against the suite's simulator."""
    return {"SIM_URL": conformance.simulator.url + "/v1"}
