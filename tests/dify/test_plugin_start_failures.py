"""Nothing strands an installed plugin: relative data directories, interpreters that cannot run.

A relative data directory (the default, ``pluginkv-data``) must work as an
absolute one does: the plugin runs in its own folder, where a relative path
to its environment would point nowhere.  An interpreter that cannot run
(``OSError`` at launch) is a failed start like any other: the plugin is
listed as failed with why, the install says why, the other plugins start,
the supervisor keeps trying, and the shutdown stays clean.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main
from pluginkv.errors import PluginFailed
from pluginkv.host.envs import Environments
from pluginkv.host.installs import INSTALLS_FILE
from pluginkv.host.invocations import Invocations
from pluginkv.host.local import LocalPlugin
from pluginkv.host.plugin_dir import read_plugin_directory
from pluginkv.host.plugin_logs import PluginLogs

from ..server.test_serve import PLUGINKV, Service
from .conftest import DENIED_ID, PLUGIN_ENVS, PLUGIN_ID, STORAGE_TOOL, HostService

pytestmark = pytest.mark.usefixtures("sdk_python")


def _relative_data_dir(cwd: Path) -> Path:
    """``pluginkv-data`` in ``cwd``, its plugin environments shared with the other tests."""
    PLUGIN_ENVS.mkdir(parents=True, exist_ok=True)
    (cwd / "pluginkv-data").mkdir()
    (cwd / "pluginkv-data" / "plugin-envs").symlink_to(PLUGIN_ENVS)
    return Path("pluginkv-data")


def test_a_plugin_installed_under_a_relative_data_dir_runs_and_runs_again_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data_dir = _relative_data_dir(tmp_path)
    first = HostService(data_dir)
    try:
        assert first.install("ws-rel")["state"] == "running"
        assert first.kv("ws-rel", "set", "k", "v") == {"op": "set", "key": "k"}
    finally:
        first.stop()
    second = HostService(data_dir)
    try:
        second.wait_for(lambda: second.registered(PLUGIN_ID, "ws-rel"), "the restart")
        assert second.kv("ws-rel", "get", "k")["value"] == "v"
    finally:
        second.stop()


def test_serve_with_the_default_data_dir_installs_a_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pluginkv serve`` and ``pluginkv plugin install`` as a newcomer runs them, in one folder."""
    monkeypatch.chdir(tmp_path)  # the service starts here, and so do the commands
    service = Service(_relative_data_dir(tmp_path))  # pluginkv-data, the default
    service.start()
    try:
        installed = subprocess.run(
            [PLUGINKV, "plugin", "install", str(STORAGE_TOOL), "--workspace", "ws-new"],
            env={**os.environ, "PLUGINKV_URL": service.url},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        _, output = service.stop(signal.SIGTERM)
    assert installed.returncode == 0, installed.stderr + output
    assert installed.stdout.startswith(f"{PLUGIN_ID} 0.1.0 runs (stdio, pid ")
    assert "Traceback" not in output


@pytest.fixture(name="broken_interpreter")
def _broken_interpreter(tmp_path: Path) -> Path:
    """A file where a plugin's interpreter should be, that cannot be executed."""
    python = tmp_path / "broken-env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o644)
    return python


@pytest.fixture(name="break_environments")
def _break_environments(
    monkeypatch: pytest.MonkeyPatch, broken_interpreter: Path
) -> Iterator[list[int]]:
    """The first N environments the host asks for (N: the list's one item) have it as python."""
    broken = [1]
    real = Environments.ensure

    async def ensure(self: Environments, *args: Any, **kwargs: Any) -> Path:
        python: Path = await real(self, *args, **kwargs)
        if broken[0] > 0:
            broken[0] -= 1
            return broken_interpreter
        return python

    monkeypatch.setattr(Environments, "ensure", ensure)
    yield broken


def _shutdown_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "shutdown failed" in r.getMessage()]


@pytest.fixture(name="uvicorn_log")
def _uvicorn_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What uvicorn logs about the lifespan (it does not propagate to the root logger)."""
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(caplog.handler)
    yield caplog
    uvicorn_error.removeHandler(caplog.handler)


def test_an_interpreter_that_cannot_run_fails_the_install_with_why(
    tmp_path: Path,
    break_environments: list[int],
    broken_interpreter: Path,
    uvicorn_log: pytest.LogCaptureFixture,
) -> None:
    service = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        body = {"directory": str(STORAGE_TOOL), "workspace": "ws-b"}
        status, answer = service.call("POST", "/v1/admin/plugins/install", body)
        assert status == 502, answer
        message = json.loads(answer)["error"]["message"]
        assert f"{PLUGIN_ID} cannot start: running {broken_interpreter} -m main" in message
        assert "Permission denied" in message
        (listed,) = service.plugins()
        assert (listed["state"], listed["version"], listed["workspaces"]) == (
            "failed",
            "0.1.0",
            ["ws-b"],
        )
        assert listed["error"] == message
        # Repaired (the next environment is whole): installing again runs it.
        assert service.install("ws-b")["state"] == "running"
    finally:
        service.stop()
    assert _shutdown_failures(uvicorn_log) == []


def test_cli_install_says_why_the_plugin_could_not_start(
    tmp_path: Path, break_environments: list[int]
) -> None:
    service = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        options = ["--url", service.url, "--data-dir", str(service.data_dir)]
        result = CliRunner().invoke(
            main, ["plugin", "install", str(STORAGE_TOOL), "--workspace", "ws-c", *options]
        )
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith(f"error: {PLUGIN_ID} cannot start: running ")
        assert "Permission denied" in result.stderr
        listed = CliRunner().invoke(main, ["plugins", *options])
        (line,) = listed.stdout.splitlines()
        assert line.split("\t")[6:8] == ["failed", result.stderr.removeprefix("error: ").strip()]
    finally:
        service.stop()


def test_a_plugin_that_cannot_start_at_service_start_does_not_hold_up_the_next(
    tmp_path: Path,
    break_environments: list[int],
    denied_directory: Path,
    uvicorn_log: pytest.LogCaptureFixture,
) -> None:
    """Started in the order of the list: the first one's interpreter cannot run."""
    data = tmp_path / "data"
    data.mkdir()
    listed = [
        {"plugin": PLUGIN_ID, "directory": str(STORAGE_TOOL), "workspaces": ["ws-1"]},
        {"plugin": DENIED_ID, "directory": str(denied_directory), "workspaces": ["ws-2"]},
    ]
    (data / INSTALLS_FILE).write_text(json.dumps({"plugins": listed}))
    service = HostService(data, plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        service.wait_for(lambda: service.registered(DENIED_ID, "ws-2"), "the second plugin")
        states = {p["plugin"]: (p["state"], p["error"]) for p in service.plugins()}
        assert states[PLUGIN_ID][0] == "failed"
        assert "Permission denied" in states[PLUGIN_ID][1]
        assert states[DENIED_ID] == ("running", None)
    finally:
        service.stop()
    assert _shutdown_failures(uvicorn_log) == []


def test_the_supervisor_keeps_trying_an_interpreter_that_cannot_run_until_it_can(
    tmp_path: Path, sdk_python: Path, broken_interpreter: Path
) -> None:
    """A running plugin whose interpreter breaks: restarting with why, then running once fixed."""

    async def scenario() -> None:
        logs = PluginLogs(tmp_path, max_bytes=1 << 20, backups=1)
        local = LocalPlugin(
            read_plugin_directory(str(STORAGE_TOOL)),
            sdk_python,
            {"ws-1"},
            invocations=Invocations(_unused, _unused, _unused, _unused),
            line_limit=1 << 20,
            log=logs.of(PLUGIN_ID),
        )
        await local.start()
        try:
            assert local.process is not None
            local.python = broken_interpreter
            local.process.kill()
            while "Permission denied" not in (local.status.error or ""):
                await asyncio.sleep(0.05)
            assert local.status.state == "restarting"
            local.python = sdk_python
            while local.status.state != "running":
                await asyncio.sleep(0.05)
        finally:
            await local.stop()
        assert "cannot start: running" in logs.path(PLUGIN_ID).read_text()
        logs.close()

    asyncio.run(scenario())


def test_starting_with_an_interpreter_that_cannot_run_raises_plugin_failed(
    tmp_path: Path, broken_interpreter: Path
) -> None:
    async def scenario() -> None:
        logs = PluginLogs(tmp_path, max_bytes=1 << 20, backups=1)
        local = LocalPlugin(
            read_plugin_directory(str(STORAGE_TOOL)),
            broken_interpreter,
            {"ws-1"},
            invocations=Invocations(_unused, _unused, _unused, _unused),
            line_limit=1 << 20,
            log=logs.of(PLUGIN_ID),
        )
        with pytest.raises(PluginFailed, match="Permission denied"):
            await local.start()
        await local.stop()  # stopping a plugin that never ran is fine
        logs.close()

    asyncio.run(scenario())


def _unused() -> Any:
    raise AssertionError("the plugin makes no storage call here")
