"""A live service with the plugin host, and the example plugin on the real ``dify_plugin`` SDK.

The SDK lives in its own virtual environment (``sdk_venv.py``), never in this
interpreter: it monkey-patches its process with gevent.  One service and one
plugin process per workspace serve the whole session; starting a plugin takes
about a second.  A test that takes ``transport`` (or ``workspaces``,
``denied_workspace``) runs twice: with remote-debug plugins over TCP and with
installed ones over stdio; one that takes ``served`` runs four times: the
example on SDK 0.7.4 and ``V2`` (today's generation) on SDK 0.10, each over
both transports.  A test that needs a service of its own (a
restart, another store) runs plugins on it with ``plugins``.  Without the SDK
environment (no network, say) these tests skip, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pluginkv import Store
from pluginkv.errors import PluginFailed
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens, load_secret
from pluginkv.store import load_settings

from . import sdk_venv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Installed plugins' environments, kept between runs like the SDK's own (git-ignored).
PLUGIN_ENVS = ROOT / ".cache" / "plugin-envs"
STORAGE_TOOL = EXAMPLES / "storage_tool"
PLUGIN_ID = "pluginkv/storage_tool"
DENIED_ID = "pluginkv/storage_tool_denied"  # the example without its permissions
# Today's generation: pyproject.toml + uv.lock, Python 3.12, dify_plugin 0.10.
V2 = EXAMPLES / "storage_tool_v2"
V2_ID = "pluginkv/storage_tool_v2"


@dataclass(frozen=True, slots=True)
class Example:
    """One of the example plugins, and the SDK it runs on."""

    directory: Path
    plugin: str
    provider: str
    sdk: str
    sdk_fixture: str  # the fixture with the SDK's interpreter


EXAMPLE = Example(STORAGE_TOOL, PLUGIN_ID, "storage_tool", "0.7.4", "sdk_python")
EXAMPLE_V2 = Example(V2, V2_ID, "storage_tool_v2", "0.10.2", "sdk10_python")


@pytest.fixture(name="sdk_python", scope="session")
def _sdk_python() -> Path:
    try:
        return sdk_venv.ensure()
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"could not build the dify_plugin environment: {exc}")
        pytest.skip(f"no dify_plugin environment ({exc}); run `make dify-sdk`")


@pytest.fixture(name="sdk10_python", scope="session")
def _sdk10_python() -> Path:
    """The interpreter of dify_plugin 0.10 on Python 3.12 (today's generation of plugins)."""
    try:
        return sdk_venv.ensure(sdk_venv.SDK_0_10)
    except (OSError, subprocess.CalledProcessError, PluginFailed) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"could not build the dify_plugin 0.10 environment: {exc}")
        pytest.skip(f"no dify_plugin 0.10 environment ({exc}); run `make dify-sdk`")


class HostService:
    """``pluginkv serve``'s app with the plugin host, under uvicorn in a thread.

    Its store is a SQLite file in ``data_dir``, or ``store`` when one is given.
    """

    def __init__(self, data_dir: Path, *, store: Store | None = None, **settings: Any) -> None:
        import uvicorn

        self.data_dir = data_dir
        port = free_port()
        settings.setdefault("debug_port", 0)  # any free port; the host says which
        self.settings = load_settings(
            data_dir=str(data_dir),
            database_url=f"sqlite:///{data_dir / 'pluginkv.db'}",
            port=port,
            sqlite_synchronous="NORMAL",
            **settings,
        )
        self.tokens = Tokens(load_secret(self.settings), default_ttl=3600)
        self.app = create_app(
            self.settings, store=store, tokens=self.tokens, listen_for_plugins=True
        )
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "no service"
            time.sleep(0.01)
        self.admin = self.tokens.issue(admin=True)

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    @property
    def debug_port(self) -> int:
        port = self.app.state.host.debug_port
        assert isinstance(port, int)
        return port

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    def plugins(self) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/v1/admin/plugins")
        assert status == 200, body
        listed: list[dict[str, Any]] = json.loads(body)["plugins"]
        return listed

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def registered(self, plugin: str, workspace: str) -> bool:
        """Whether ``plugin`` runs for ``workspace`` (an installed one is listed before)."""
        return any(
            p["plugin"] == plugin and workspace in p["workspaces"] and p["state"] == "running"
            for p in self.plugins()
        )

    def install(self, workspace: str, directory: Path = STORAGE_TOOL) -> dict[str, Any]:
        """Install a plugin folder for a workspace (the first time builds its environment)."""
        body = {"directory": str(directory), "workspace": workspace}
        status, answer = self.call("POST", "/v1/admin/plugins/install", body, timeout=900)
        assert status == 200, answer
        info: dict[str, Any] = json.loads(answer)
        return info

    def kv(
        self,
        workspace: str,
        op: str,
        key: str = "",
        value: str | None = None,
        *,
        plugin: str = PLUGIN_ID,
        provider: str = "storage_tool",
    ) -> dict[str, Any]:
        """The example tool's one JSON answer to ``op`` on ``key``, called through the HTTP API."""
        parameters = {"op": op, "key": key}
        if value is not None:
            parameters["value"] = value
        body = {
            "workspace": workspace,
            "plugin": plugin,
            "provider": provider,
            "tool": "kv",
            "parameters": parameters,
        }
        status, answer = self.call("POST", "/v1/admin/tools/invoke", body)
        assert status == 200, answer
        lines = [json.loads(line) for line in answer.splitlines()]
        assert len(lines) == 1 and lines[0]["type"] == "json", lines
        result: dict[str, Any] = lines[0]["message"]["json_object"]
        return result

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class PluginProcess:
    """A plugin directory run with ``python -m main`` on the SDK's interpreter."""

    def __init__(self, python: Path, directory: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [str(python), "-m", "main"],
            cwd=directory,
            env={**clean, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        # A remote plugin never exits by itself, not even when the host is gone.
        self.process.kill()
        self.process.wait(timeout=10)
        self._log_file.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Plugins:
    """Runs plugin folders (the example by default) for the workspaces of any ``HostService``.

    Over ``tcp`` a plugin is a remote-debug process of its own, started here
    and killed by ``stop``; over ``stdio`` it is installed, and the service
    runs it (and kills it when it stops).
    """

    def __init__(self, python: Path, logs: pytest.TempPathFactory) -> None:
        self.python = python
        self._logs = logs
        self._started: list[PluginProcess] = []

    def remote(
        self,
        service: HostService,
        workspace: str,
        *,
        directory: Path = STORAGE_TOOL,
        plugin: str = PLUGIN_ID,
        key: str | None = None,
        wait: bool = True,
    ) -> PluginProcess:
        """A remote-debug plugin of ``service``; with ``wait``, once it registered."""
        if key is None:
            key = service.tokens.issue_debug_key(workspace=workspace)
        env = {
            # pluginkv.dify.storage(session) in the example's incr, cas and batch ops.
            "PYTHONPATH": str(ROOT / "src"),
            "INSTALL_METHOD": "remote",
            "REMOTE_INSTALL_URL": f"127.0.0.1:{service.debug_port}",
            "REMOTE_INSTALL_KEY": key,
        }
        log = self._logs.mktemp("plugin") / "plugin.log"
        process = PluginProcess(self.python, directory, env, log)
        self._started.append(process)
        if wait:
            try:
                service.wait_for(lambda: service.registered(plugin, workspace), "registration")
            except AssertionError:
                raise AssertionError(process.output()) from None
        return process

    def serve(
        self,
        service: HostService,
        transport: str,
        workspace: str,
        *,
        directory: Path = STORAGE_TOOL,
        plugin: str = PLUGIN_ID,
    ) -> None:
        """Have ``service`` run the plugin for ``workspace`` over ``transport``."""
        if transport == "tcp":
            self.remote(service, workspace, directory=directory, plugin=plugin)
        else:
            service.install(workspace, directory)

    def stop(self) -> None:
        """Kill the remote-debug plugins started here: they never exit by themselves."""
        for process in self._started:
            process.stop()
        self._started.clear()


@pytest.fixture(name="service", scope="session")
def _service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    service = HostService(
        tmp_path_factory.mktemp("host") / "data", plugin_envs_dir=str(PLUGIN_ENVS)
    )
    yield service
    service.stop()


@pytest.fixture(name="plugins")
def _plugins(sdk_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugins]:
    """Plugins for the services a test starts itself; the processes die with the test."""
    plugins = Plugins(sdk_python, tmp_path_factory)
    yield plugins
    plugins.stop()


RemoteStarter = Callable[..., PluginProcess]


@pytest.fixture(name="start_remote", scope="session")
def _start_remote(
    sdk_python: Path, service: HostService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteStarter]:
    """Start a plugin in remote mode: ``start_remote(workspace)`` waits until it registered."""
    plugins = Plugins(sdk_python, tmp_path_factory)
    yield functools.partial(plugins.remote, service)
    plugins.stop()


@pytest.fixture(name="ws1_plugin", scope="session")
def _ws1_plugin(start_remote: RemoteStarter) -> PluginProcess:
    return start_remote("ws-1")


@pytest.fixture(name="ws2_plugin", scope="session")
def _ws2_plugin(start_remote: RemoteStarter) -> PluginProcess:
    return start_remote("ws-2")


@pytest.fixture(name="denied_directory", scope="session")
def _denied_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example, named storage_tool_denied, with both permissions switched off.

    A name of its own: installed, it must not replace the example's process.
    """
    directory = tmp_path_factory.mktemp("denied") / "storage_tool"
    shutil.copytree(STORAGE_TOOL, directory)
    manifest = directory / "manifest.yaml"
    text = manifest.read_text()
    assert "\nname: storage_tool\n" in text and text.count("enabled: true") == 2
    text = text.replace("\nname: storage_tool\n", f"\nname: {DENIED_ID.split('/')[1]}\n")
    manifest.write_text(text.replace("enabled: true", "enabled: false"))  # storage, endpoint
    return directory


@pytest.fixture(name="denied_plugin", scope="session")
def _denied_plugin(start_remote: RemoteStarter, denied_directory: Path) -> PluginProcess:
    """The denied copy as a remote-debug plugin for workspace ws-denied."""
    return start_remote("ws-denied", directory=denied_directory, plugin=DENIED_ID)


@pytest.fixture(name="denied_local_plugin", scope="session")
def _denied_local_plugin(
    sdk_python: Path, service: HostService, denied_directory: Path
) -> dict[str, Any]:
    """The denied copy installed for workspace ls-denied."""
    return service.install("ls-denied", denied_directory)


@pytest.fixture(name="local_plugin", scope="session")
def _local_plugin(sdk_python: Path, service: HostService) -> dict[str, Any]:
    """The example installed for ls-1 and ls-2: one process over stdio, serving both."""
    service.install("ls-1")
    return service.install("ls-2")


@pytest.fixture(name="transport", params=["tcp", "stdio"])
def _transport(request: pytest.FixtureRequest) -> str:
    """What the plugins of a test run over: remote debugging (tcp) or an install (stdio)."""
    param: str = request.param
    return param


@pytest.fixture(name="workspaces")
def _workspaces(transport: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    """Two workspaces the example serves, over the transport."""
    return _example_workspaces(transport, request)


def _example_workspaces(transport: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    if transport == "tcp":
        request.getfixturevalue("ws1_plugin")
        request.getfixturevalue("ws2_plugin")
        return "ws-1", "ws-2"
    request.getfixturevalue("local_plugin")
    return "ls-1", "ls-2"


@pytest.fixture(name="denied_workspace")
def _denied_workspace(transport: str, request: pytest.FixtureRequest) -> str:
    """A workspace the denied copy (``DENIED_ID``) serves, over the transport."""
    if transport == "tcp":
        request.getfixturevalue("denied_plugin")
        return "ws-denied"
    request.getfixturevalue("denied_local_plugin")
    return "ls-denied"


@pytest.fixture(name="start_remote10", scope="session")
def _start_remote10(
    sdk10_python: Path, service: HostService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteStarter]:
    """``start_remote`` on dify_plugin 0.10, for ``V2`` by default."""
    plugins = Plugins(sdk10_python, tmp_path_factory)
    yield functools.partial(plugins.remote, service, directory=V2, plugin=V2_ID)
    plugins.stop()


@pytest.fixture(name="v2_remote_plugins", scope="session")
def _v2_remote_plugins(start_remote10: RemoteStarter, service: HostService) -> tuple[str, str]:
    """``V2`` on SDK 0.10 in remote debugging, one process for each of two workspaces."""
    workspaces = ("v2-ws-1", "v2-ws-2")
    processes = [start_remote10(workspace, wait=False) for workspace in workspaces]
    for workspace, process in zip(workspaces, processes, strict=True):
        try:
            service.wait_for(lambda w=workspace: service.registered(V2_ID, w), "registration")
        except AssertionError:
            raise AssertionError(process.output()) from None
    return workspaces


@pytest.fixture(name="v2_local_plugin", scope="session")
def _v2_local_plugin(sdk10_python: Path, service: HostService) -> tuple[str, str]:
    """``V2`` installed for two workspaces: one process over stdio, serving both."""
    service.install("v2-ls-1", V2)
    service.install("v2-ls-2", V2)
    return "v2-ls-1", "v2-ls-2"


@dataclass(frozen=True, slots=True)
class Served:
    """Two workspaces an example plugin serves over a transport: what a call names."""

    example: Example
    transport: str
    workspaces: tuple[str, str]

    @property
    def workspace(self) -> str:
        return self.workspaces[0]

    def call(self, **body: Any) -> dict[str, Any]:
        """The body of a tool call on the example's ``kv`` tool in the first workspace."""
        request = {"workspace": self.workspace, "plugin": self.example.plugin}
        return request | {"provider": self.example.provider, "tool": "kv", **body}


@pytest.fixture(
    name="served",
    params=[(EXAMPLE, "tcp"), (EXAMPLE, "stdio"), (EXAMPLE_V2, "tcp"), (EXAMPLE_V2, "stdio")],
    ids=lambda param: f"sdk{param[0].sdk}-{param[1]}",
)
def _served(request: pytest.FixtureRequest) -> Served:
    """The example on SDK 0.7.4 and ``V2`` on SDK 0.10, each over both transports."""
    example, transport = request.param
    if example is EXAMPLE:
        workspaces = _example_workspaces(transport, request)
    elif transport == "tcp":
        workspaces = request.getfixturevalue("v2_remote_plugins")
    else:
        workspaces = request.getfixturevalue("v2_local_plugin")
    return Served(example, transport, workspaces)


@pytest.fixture(name="kv")
def _kv(service: HostService) -> Callable[..., dict[str, Any]]:
    """``kv(workspace, op, key, value)``: ``HostService.kv`` on the session's service."""
    return service.kv
