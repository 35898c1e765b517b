"""Installing another version of a running plugin: it starts beside the old one, or fails alone."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pluginkv.host.installs import INSTALLS_FILE

from .conftest import PLUGIN_ENVS, PLUGIN_ID, STORAGE_TOOL, V2, V2_ID, HostService
from .plugin_copies import GATED_MAIN, INVALID_MAIN, example_copy

pytestmark = pytest.mark.usefixtures("sdk_python")


@pytest.fixture(name="host")
def _host(tmp_path: Path) -> Iterator[HostService]:
    service = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    yield service
    service.stop()


@pytest.fixture(name="v2_host", scope="module")
def _v2_host(sdk10_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostService]:
    """A service running ``V2`` (SDK 0.10) for ws-r, which holds ``kept``.

    Shared by the tests of failed replacements: a replacement that fails changes nothing.
    """
    service = HostService(
        tmp_path_factory.mktemp("v2-host") / "data", plugin_envs_dir=str(PLUGIN_ENVS)
    )
    service.install("ws-r", V2)
    service.kv("ws-r", "set", "kept", "yes", plugin=V2_ID, provider="storage_tool_v2")
    yield service
    service.stop()


def _entry(service: HostService, plugin: str = PLUGIN_ID) -> dict[str, Any]:
    (entry,) = [p for p in service.plugins() if p["plugin"] == plugin]
    return entry


def _started(service: HostService) -> int:
    """How many processes of the plugin the host has launched, as its log says."""
    log = service.data_dir / "plugin-logs" / "pluginkv" / "storage_tool.log"
    return log.read_text().count(" started: ") if log.exists() else 0


def test_a_new_version_that_fails_to_start_leaves_the_old_one_serving(
    host: HostService, tmp_path: Path
) -> None:
    old = host.install("ws-r")
    host.kv("ws-r", "set", "kept", "yes")
    broken = example_copy(tmp_path / "v2", version="0.2.0", main=INVALID_MAIN)
    body = {"directory": str(broken), "workspace": "ws-r"}
    status, answer = host.call("POST", "/v1/admin/plugins/install", body)
    assert status == 502
    assert "ValidationError" in json.loads(answer)["error"]["message"]
    entry = _entry(host)
    assert (entry["version"], entry["state"], entry["peer"]) == ("0.1.0", "running", old["peer"])
    assert host.kv("ws-r", "get", "kept")["value"] == "yes"
    (listed,) = json.loads((host.data_dir / INSTALLS_FILE).read_text())["plugins"]
    assert listed["directory"] == str(STORAGE_TOOL)


def test_a_new_version_of_a_uv_project_that_fails_to_start_leaves_the_old_one_serving(
    v2_host: HostService, tmp_path: Path
) -> None:
    """On SDK 0.10: the new version's environment is the old one's (the same lock)."""
    before = _entry(v2_host, V2_ID)
    broken = example_copy(tmp_path / "v2", version="0.2.0", main=INVALID_MAIN, source=V2)
    answer = _refused(v2_host, broken)
    assert "ValidationError" in answer and "MAX_REQUEST_TIMEOUT" in answer
    _still_serves(v2_host, before)


def test_a_new_version_whose_lock_uv_cannot_read_leaves_the_old_one_serving(
    v2_host: HostService, tmp_path: Path
) -> None:
    """Its environment fails to build: no process of it starts, the old one serves on."""
    before = _entry(v2_host, V2_ID)
    broken = example_copy(tmp_path / "v2", version="0.2.0", source=V2)
    with (broken / "uv.lock").open("a") as lock:
        lock.write("not toml [\n")
    envs_before = _environments()
    answer = _refused(v2_host, broken)
    assert "uv.lock" in answer and "TOML parse error" in answer
    _still_serves(v2_host, before)
    assert _environments() == envs_before  # nothing half-built left behind


def _environments() -> set[Path]:
    return {path for path in PLUGIN_ENVS.iterdir() if not path.name.startswith(".")}


def _refused(service: HostService, directory: Path) -> str:
    """The reason the install of ``directory`` for ws-r was refused with."""
    body = {"directory": str(directory), "workspace": "ws-r"}
    status, answer = service.call("POST", "/v1/admin/plugins/install", body)
    assert status == 502, answer
    message: str = json.loads(answer)["error"]["message"]
    return message


def _still_serves(service: HostService, before: dict[str, Any]) -> None:
    """``V2`` 0.1.0 as ``before`` listed it serves ws-r, with its data and its install."""
    entry = _entry(service, V2_ID)
    assert (entry["version"], entry["state"], entry["peer"]) == ("0.1.0", "running", before["peer"])
    kept = service.kv("ws-r", "get", "kept", plugin=V2_ID, provider="storage_tool_v2")
    assert kept["value"] == "yes"
    stored = service.store.storage(workspace="ws-r", plugin=V2_ID)
    assert [(e.key, e.version) for e in stored.keys()] == [("kept", 1)]
    (listed,) = json.loads((service.data_dir / INSTALLS_FILE).read_text())["plugins"]
    assert listed["directory"] == str(V2)


def test_the_old_version_serves_until_the_new_one_is_ready(
    host: HostService, tmp_path: Path
) -> None:
    old = host.install("ws-r")
    old_pid = int(old["peer"].removeprefix("pid "))
    host.kv("ws-r", "set", "kept", "yes")
    new = example_copy(tmp_path / "v2", version="0.2.0", main=GATED_MAIN)
    installed: list[dict[str, Any]] = []
    installing = threading.Thread(target=lambda: installed.append(host.install("ws-r", new)))
    installing.start()
    host.wait_for(lambda: _started(host) == 2, "the new process")
    # The new one waits at its gate; the old one still answers.
    assert _entry(host)["version"] == "0.1.0"
    assert host.kv("ws-r", "get", "kept")["value"] == "yes"
    (new / "gate").touch()
    installing.join(timeout=120)
    assert [info["version"] for info in installed] == ["0.2.0"]
    entry = _entry(host)
    assert (entry["version"], entry["state"]) == ("0.2.0", "running")
    assert entry["peer"] != old["peer"]
    host.wait_for(lambda: not _alive(old_pid), "the old process to stop")  # no call was open
    assert host.kv("ws-r", "get", "kept")["value"] == "yes"


def test_a_call_open_on_the_old_version_ends_normally_after_the_new_one_took_over(
    host: HostService, tmp_path: Path
) -> None:
    """The old process serves its open calls to their end before it stops."""
    old = host.install("ws-r")
    old_pid = int(old["peer"].removeprefix("pid "))
    answers: list[tuple[int, bytes]] = []
    body = {
        "workspace": "ws-r",
        "plugin": PLUGIN_ID,
        "provider": "storage_tool",
        "tool": "kv",
        "parameters": {"op": "wait", "key": "release", "value": "120"},
    }
    waiting = threading.Thread(
        target=lambda: answers.append(host.call("POST", "/v1/admin/tools/invoke", body, 150))
    )
    waiting.start()
    host.wait_for(lambda: host.kv("ws-r", "exist", "release")["exist"] is False, "a call")
    new = host.install("ws-r", example_copy(tmp_path / "v2", version="0.2.0"))
    assert new["version"] == "0.2.0" and new["peer"] != old["peer"]
    os.kill(old_pid, 0)  # still there: a call is open on it
    host.kv("ws-r", "set", "release", "done")  # through the new process
    waiting.join(timeout=150)
    ((status, answer),) = answers
    assert status == 200
    last = json.loads(answer.splitlines()[-1])
    assert last["message"]["json_object"] == {"op": "wait", "key": "release", "released": "done"}
    host.wait_for(lambda: not _alive(old_pid), "the old process to stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
