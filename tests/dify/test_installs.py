"""Today's Dify plugins, unchanged: a uv project on Python 3.12 and ``dify_plugin`` 0.10, as a
folder, as a ``.difypkg`` and in remote debugging; what the host says when the Python is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pluginkv.cli import main

from .conftest import PLUGIN_ENVS, V2, V2_ID, HostService
from .test_endpoints import _request


def make_difypkg(directory: Path, package: Path) -> Path:
    """``directory`` zipped as ``dify plugin package`` lays it out: its files at the root."""
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            relative = file.relative_to(directory)
            if file.is_file() and not {"__pycache__", ".venv"} & set(relative.parts):
                archive.write(file, relative.as_posix())
    return package


def kv(service: HostService, workspace: str, op: str, key: str = "", value: str = "") -> Any:
    body = {
        "workspace": workspace,
        "plugin": V2_ID,
        "provider": "storage_tool_v2",
        "tool": "kv",
        "parameters": {"op": op, "key": key, "value": value},
    }
    status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
    assert status == 200, answer
    (line,) = answer.splitlines()
    result = json.loads(line)["message"]["json_object"]
    assert "error" not in result, result
    return result


def exercise(service: HostService, workspace: str) -> None:
    """The tool's storage, then the endpoint's, in ``workspace``: what a plugin author tries."""
    assert kv(service, workspace, "version")["dify_plugin"] == "0.10.2"
    kv(service, workspace, "set", "greeting", "hello from 0.10")
    assert kv(service, workspace, "get", "greeting")["value"] == "hello from 0.10"
    assert kv(service, workspace, "exist", "greeting")["exist"] is True
    body = {"workspace": workspace, "plugin": V2_ID, "settings": {}}
    status, answer = service.call("POST", "/v1/admin/endpoints", body)
    assert status == 200, answer
    url = json.loads(answer)["url"]
    note = os.urandom(200_000)
    status, _, text = _request(url + "/notes/big", "POST", note)
    assert (status, text) == (201, b"stored 200000 bytes")
    status, _, read_back = _request(url + "/notes/big")
    assert (status, read_back) == (200, note)
    stored = service.store.storage(workspace=workspace, plugin=V2_ID).get("notes/big")
    assert stored == note


def test_a_uv_project_installs_with_its_lock_on_the_python_its_manifest_asks_for(
    service: HostService,
) -> None:
    lock_before = (V2 / "uv.lock").read_bytes()
    info = service.install("v2-1", V2)
    assert (info["plugin"], info["state"]) == (V2_ID, "running")
    assert kv(service, "v2-1", "version")["python"].startswith("3.12.")
    exercise(service, "v2-1")
    # The plugin's folder is left as it was: no lock rewritten, no .venv in it.
    assert (V2 / "uv.lock").read_bytes() == lock_before
    assert not (V2 / ".venv").exists()


def test_the_same_plugin_runs_in_remote_debugging_on_sdk_0_10(
    service: HostService, v2_remote_plugins: tuple[str, str]
) -> None:
    workspace = v2_remote_plugins[0]
    assert kv(service, workspace, "version")["python"].startswith("3.12.")
    exercise(service, workspace)


def test_a_difypkg_installs_from_where_it_is_unpacked_under_the_data_directory(
    service: HostService, tmp_path: Path
) -> None:
    package = make_difypkg(V2, tmp_path / "storage_tool_v2-0.1.0.difypkg")
    service.install("v2-pkg", package)
    exercise(service, "v2-pkg")
    (unpacked,) = (service.data_dir / "dify-packages").glob("pluginkv-storage_tool_v2-0.1.0-*")
    assert (unpacked / "manifest.yaml").read_bytes() == (V2 / "manifest.yaml").read_bytes()
    installs = json.loads((service.data_dir / "dify-plugins.json").read_text())["plugins"]
    assert {"plugin": V2_ID, "directory": str(unpacked)} in [
        {k: entry[k] for k in ("plugin", "directory")} for entry in installs
    ]


def test_a_missing_python_is_one_line_naming_the_version_and_the_setting(
    service: HostService, tmp_path: Path
) -> None:
    directory = tmp_path / "storage_tool_v2"
    shutil.copytree(V2, directory, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = directory / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace('version: "3.12"', 'version: "3.99"'))
    envs_before = sorted(PLUGIN_ENVS.iterdir())
    body = {"directory": str(directory), "workspace": "v2-missing"}
    status, answer = service.call("POST", "/v1/admin/plugins/install", body)
    assert status == 502, answer
    message = json.loads(answer)["error"]["message"]
    assert "\n" not in message
    assert "asks for Python 3.99 (meta.runner.version)" in message
    assert "PLUGINKV_PLUGIN_PYTHONS" in message and "pyenv" in message
    assert sorted(PLUGIN_ENVS.iterdir()) == envs_before


def test_cli_installs_a_difypkg(service: HostService, tmp_path: Path) -> None:
    package = make_difypkg(V2, tmp_path / "storage_tool_v2-0.1.0.difypkg")
    options = ["--url", service.url, "--data-dir", str(service.data_dir), "--workspace", "v2-cli"]
    installed = CliRunner().invoke(main, ["plugin", "install", str(package), *options])
    assert installed.exit_code == 0, installed.output
    assert installed.stdout.startswith(f"{V2_ID} 0.1.0 runs (stdio, pid ")
    assert kv(service, "v2-cli", "version")["dify_plugin"] == "0.10.2"


def test_a_pyproject_without_a_lock_installs_its_declared_dependencies(
    service: HostService, tmp_path: Path
) -> None:
    directory = tmp_path / "unlocked"
    shutil.copytree(V2, directory, ignore=shutil.ignore_patterns("__pycache__", "uv.lock"))
    manifest = directory / "manifest.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("\nname: storage_tool_v2\n", "\nname: unlocked\n"))
    body = {"directory": str(directory), "workspace": "v2-unlocked"}
    status, answer = service.call("POST", "/v1/admin/plugins/install", body, timeout=900)
    assert status == 200, answer
    parameters = {"op": "version", "key": "", "value": ""}
    body = {
        "workspace": "v2-unlocked",
        "plugin": "pluginkv/unlocked",
        "provider": "storage_tool_v2",
        "tool": "kv",
        "parameters": parameters,
    }
    status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
    assert status == 200, answer
    versions = json.loads(answer)["message"]["json_object"]
    # pyproject.toml asks for dify_plugin>=0.10.2,<0.11; no lock was written into the folder.
    assert versions["dify_plugin"].startswith("0.10.") and versions["python"].startswith("3.12.")
    assert not (directory / "uv.lock").exists()
