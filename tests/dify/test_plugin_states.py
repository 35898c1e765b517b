"""What ``pluginkv plugins`` shows of installed plugins: starting, running, restarting, failed.

Each test runs a service of its own.  The example under test waits at
start-up, before it runs the SDK, until a file the test controls exists (a
gate), so it stays starting, or restarting, for exactly as long as the test
wants; nothing is timed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main
from pluginkv.host.installs import INSTALLS_FILE

from .conftest import PLUGIN_ENVS, PLUGIN_ID, STORAGE_TOOL, HostService

GATED_MAIN = """\
import time
from pathlib import Path

# The test opens the gate (creates the file) when the plugin may start.
while not Path("gate").exists():
    time.sleep(0.02)

from dify_plugin import DifyPluginEnv, Plugin

plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=120))

if __name__ == "__main__":
    plugin.run()
"""


@pytest.fixture(name="host")
def _host(tmp_path: Path) -> Iterator[HostService]:
    # Calls give up on a plugin that is not running at once (none waits for a gate).
    service = HostService(
        tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS), plugin_start_wait_seconds=0
    )
    yield service
    service.stop()


@pytest.fixture(name="gated")
def _gated(tmp_path: Path) -> Path:
    """A copy of the example that starts only once its gate file exists."""
    directory = tmp_path / "storage_tool"
    shutil.copytree(STORAGE_TOOL, directory, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "main.py").write_text(GATED_MAIN)
    return directory


def _entry(service: HostService) -> dict[str, Any]:
    (entry,) = [p for p in service.plugins() if p["plugin"] == PLUGIN_ID]
    return entry


def _install_in_background(service: HostService, directory: Path) -> threading.Thread:
    thread = threading.Thread(target=service.install, args=("ws-s", directory), daemon=True)
    thread.start()
    return thread


@pytest.mark.usefixtures("sdk_python")
def test_a_plugin_is_listed_as_starting_until_it_runs(host: HostService, gated: Path) -> None:
    installing = _install_in_background(host, gated)
    host.wait_for(lambda: any(p["plugin"] == PLUGIN_ID for p in host.plugins()), "the listing")
    starting = _entry(host)
    assert (starting["state"], starting["transport"], starting["workspaces"]) == (
        "starting",
        "stdio",
        ["ws-s"],
    )
    assert (starting["version"], starting["peer"], starting["last_heartbeat"]) == (
        "0.1.0",
        "",
        None,
    )
    assert starting["error"] is None
    (gated / "gate").touch()
    installing.join(timeout=120)
    running = _entry(host)
    assert (running["state"], running["error"]) == ("running", None)
    assert running["peer"].startswith("pid ") and running["last_heartbeat"] is not None


@pytest.mark.usefixtures("sdk_python")
def test_a_plugin_whose_process_died_is_restarting_with_why(host: HostService, gated: Path) -> None:
    """Listed, with the exit and the end of its stderr, until it runs again."""
    (gated / "gate").touch()
    host.install("ws-s", gated)
    pid = int(_entry(host)["peer"].removeprefix("pid "))
    (gated / "gate").unlink()  # the next process waits
    os.kill(pid, signal.SIGKILL)
    host.wait_for(lambda: _entry(host)["state"] == "restarting", "the restart")
    restarting = _entry(host)
    assert restarting["error"].startswith("exited with code -9")
    assert (restarting["peer"], restarting["last_heartbeat"]) == ("", None)
    status, answer = host.call(
        "POST",
        "/v1/admin/tools/invoke",
        {"workspace": "ws-s", "plugin": PLUGIN_ID, "provider": "storage_tool", "tool": "kv"},
    )
    assert status == 404
    assert (
        f"{PLUGIN_ID} is installed for workspace ws-s but not running "
        "(restarting: exited with code -9"
    ) in json.loads(answer)["error"]["message"]
    (gated / "gate").touch()
    host.wait_for(lambda: _entry(host)["state"] == "running", "the new process")
    assert _entry(host)["error"] is None


@pytest.mark.usefixtures("sdk_python")
def test_a_plugin_that_keeps_failing_to_start_stays_restarting_since_it_stopped(
    host: HostService, gated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed start is the new error; since stays when the process first stopped."""
    caplog.set_level(logging.WARNING, logger="pluginkv.dify")
    (gated / "gate").touch()
    host.install("ws-s", gated)
    pid = int(_entry(host)["peer"].removeprefix("pid "))
    (gated / "main.py").write_text('raise SystemExit("broken on purpose")\n')
    os.kill(pid, signal.SIGKILL)
    host.wait_for(lambda: "broken on purpose" in (_entry(host)["error"] or ""), "a failed start")
    first = _entry(host)
    failed_start = f"{PLUGIN_ID} exited at start-up; its stderr ends: broken on purpose"

    def failed_starts() -> int:
        return [r.getMessage() for r in caplog.records].count(failed_start)

    host.wait_for(lambda: failed_starts() >= 2, "another failed start")
    again = _entry(host)
    assert (again["state"], again["since"]) == ("restarting", first["since"])
    assert again["error"] == failed_start


@pytest.fixture(name="broken_install")
def _broken_install(tmp_path: Path) -> Iterator[HostService]:
    """A service whose data directory lists a plugin whose folder has gone."""
    data = tmp_path / "data"
    data.mkdir()
    listed = {"plugin": PLUGIN_ID, "directory": str(tmp_path / "gone"), "workspaces": ["ws-f"]}
    (data / INSTALLS_FILE).write_text(json.dumps({"plugins": [listed]}))
    service = HostService(data, plugin_envs_dir=str(PLUGIN_ENVS))
    yield service
    service.stop()


def test_an_installed_plugin_that_cannot_start_is_listed_as_failed(
    broken_install: HostService,
) -> None:
    service = broken_install
    service.wait_for(lambda: any(p["state"] == "failed" for p in service.plugins()), "failure")
    failed = _entry(service)
    assert (failed["workspaces"], failed["transport"], failed["peer"]) == (["ws-f"], "stdio", "")
    assert "no manifest.yaml" in failed["error"]


def test_cli_shows_the_state_and_the_error(broken_install: HostService) -> None:
    service = broken_install
    service.wait_for(lambda: any(p["state"] == "failed" for p in service.plugins()), "failure")
    result = CliRunner().invoke(
        main, ["plugins", "--url", service.url, "--data-dir", str(service.data_dir)]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    fields = line.split("\t")
    assert fields[:4] == [PLUGIN_ID, "-", "stdio", "ws-f"]
    assert fields[5:7] == ["-", "failed"]
    assert "no manifest.yaml" in fields[7]


def test_uninstalling_a_failed_plugin_takes_it_off_the_list(broken_install: HostService) -> None:
    service = broken_install
    service.wait_for(lambda: any(p["state"] == "failed" for p in service.plugins()), "failure")
    body = {"plugin": PLUGIN_ID, "workspace": "ws-f"}
    status, _ = service.call("POST", "/v1/admin/plugins/uninstall", body)
    assert status == 200
    assert service.plugins() == []
