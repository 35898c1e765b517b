"""Installed plugins, launched by the host over stdio (``INSTALL_METHOD=local``)."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main

from .conftest import PLUGIN_ENVS, PLUGIN_ID, HostService

Kv = Callable[..., dict[str, Any]]

pytestmark = pytest.mark.usefixtures("local_plugin")


def _local(service: HostService) -> dict[str, Any]:
    (entry,) = [
        p for p in service.plugins() if (p["plugin"], p["transport"]) == (PLUGIN_ID, "stdio")
    ]
    return entry


def _pid(service: HostService) -> int:
    return int(_local(service)["peer"].removeprefix("pid "))


def _runs_another_process(service: HostService, pid: int) -> bool:
    entry = _local(service)  # one answer, in which the state and the process agree
    return entry["state"] == "running" and entry["peer"] != f"pid {pid}"


def test_one_process_serves_every_workspace_that_installed_it(
    local_plugin: dict[str, Any], service: HostService
) -> None:
    assert local_plugin["workspaces"] == ["ls-1", "ls-2"]
    entry = _local(service)
    assert (entry["plugin"], entry["transport"]) == (PLUGIN_ID, "stdio")
    assert entry["workspaces"] == ["ls-1", "ls-2"]


def test_a_line_printed_by_plugin_code_is_logged_not_fatal(
    kv: Kv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pluginkv.dify")
    assert "error" not in kv("ls-1", "print")
    assert "a line from plugin code, not JSON" in caplog.text
    assert kv("ls-1", "exist", "nothing")["exist"] is False


def test_a_killed_plugin_is_started_again(kv: Kv, service: HostService) -> None:
    kv("ls-1", "set", "survivor", "yes")
    old = _pid(service)
    os.kill(old, signal.SIGKILL)
    service.wait_for(lambda: _runs_another_process(service, old), "the new process")
    assert kv("ls-1", "get", "survivor")["value"] == "yes"


def test_uninstall_stops_serving_the_workspace_and_keeps_its_data(
    kv: Kv, service: HostService
) -> None:
    service.install("ls-3")
    kv("ls-3", "set", "kept", "1")
    status, answer = service.call(
        "POST", "/v1/admin/plugins/uninstall", {"plugin": PLUGIN_ID, "workspace": "ls-3"}
    )
    assert (status, json.loads(answer)["workspaces"]) == (200, ["ls-1", "ls-2"])
    status, answer = service.call(
        "POST",
        "/v1/admin/tools/invoke",
        {"workspace": "ls-3", "plugin": PLUGIN_ID, "provider": "storage_tool", "tool": "kv"},
    )
    assert status == 404
    assert service.store.storage(workspace="ls-3", plugin=PLUGIN_ID).get("kept") == b"1"


def test_cli_installs_and_uninstalls(service: HostService) -> None:
    options = ["--url", service.url, "--data-dir", str(service.data_dir), "--workspace", "ls-4"]
    directory = str(Path(__file__).parents[2] / "examples" / "storage_tool")
    installed = CliRunner().invoke(main, ["plugin", "install", directory, *options])
    assert installed.exit_code == 0, installed.output
    assert installed.stdout.startswith(f"{PLUGIN_ID} 0.1.0 runs (stdio, pid ")
    assert "ls-4" in installed.stdout
    removed = CliRunner().invoke(main, ["plugin", "uninstall", *options, "--plugin", PLUGIN_ID])
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"{PLUGIN_ID} still serves ls-1, ls-2\n"


@pytest.mark.parametrize(
    ("directory", "message"),
    [
        pytest.param("relative/path", "absolute", id="relative"),
        pytest.param("/", "no manifest.yaml", id="no-manifest"),
        pytest.param("/\x00", "cannot read", id="nul"),
    ],
)
def test_a_folder_that_is_no_plugin_is_400(
    service: HostService, directory: str, message: str
) -> None:
    body = {"directory": directory, "workspace": "ls-1"}
    status, answer = service.call("POST", "/v1/admin/plugins/install", body)
    assert status == 400
    assert message in json.loads(answer)["error"]["message"]


def test_installs_survive_a_restart_and_shutdown_kills_the_plugins(
    tmp_path: Path, sdk_python: Path
) -> None:
    """The data directory lists what is installed; a new service starts it again by itself.

    That the plugin's data survives too is tested on both transports in test_plugins.py.
    """
    first = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        first.install("ws-r")
        pid = _pid(first)
    finally:
        first.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    second = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        second.wait_for(lambda: second.registered(PLUGIN_ID, "ws-r"), "the restart")
    finally:
        second.stop()


def test_a_local_plugin_that_goes_silent_is_restarted(tmp_path: Path, sdk_python: Path) -> None:
    """No heartbeat within the timeout (the SDK beats every 10 s): killed and started again."""
    service = HostService(
        tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS), heartbeat_timeout_seconds=2
    )
    try:
        service.install("ws-h")
        first = _pid(service)
        service.wait_for(lambda: _runs_another_process(service, first), "the restart", 20)
        assert service.registered(PLUGIN_ID, "ws-h")
    finally:
        service.stop()
