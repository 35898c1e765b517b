"""Installed plugins' environments: which Python, which index, and what a failed build leaves."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from pluginkv.errors import PluginFailed
from pluginkv.host.envs import Environments
from pluginkv.host.package_index import parse_pip_config, uv_index_environment
from pluginkv.host.plugin_dir import read_plugin_directory
from pluginkv.host.pythons import find_python

from .conftest import EXAMPLES

OWN = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_no_runner_version_means_the_services_own_python() -> None:
    found = find_python(None, {})
    assert (found.path, found.version.startswith(OWN + ".")) == (Path(sys.executable), True)


def test_a_runner_version_finds_an_interpreter_of_that_version() -> None:
    # This machine has 3.12 under pyenv, where PATH's python3.12 is a shim that fails.
    found = find_python("3.12", {})
    assert found.version.startswith("3.12.")
    assert found.path.is_absolute()


def test_the_setting_names_the_interpreter_and_is_the_only_one_tried(tmp_path: Path) -> None:
    found = find_python(OWN, {OWN: sys.executable})
    assert found.path == Path(sys.executable)
    with pytest.raises(PluginFailed) as caught:
        find_python("3.12", {"3.12": sys.executable})
    assert str(caught.value) == (
        f"the plugin asks for Python 3.12 (meta.runner.version) and PLUGINKV_PLUGIN_PYTHONS "
        f"names {sys.executable}, which is Python {found.version}"
    )


def test_no_interpreter_of_the_version_is_one_line_with_what_was_tried_and_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A python3.98 on PATH that does not run, as a pyenv shim without its version.
    shim = tmp_path / "bin" / "python3.98"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.98: command not found' >&2\nexit 127\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PluginFailed) as caught:
        find_python("3.98", {})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the plugin asks for Python 3.98 (meta.runner.version)")
    assert f"{shim} does not run (pyenv: python3.98: command not found)" in message
    assert """PLUGINKV_PLUGIN_PYTHONS='{"3.98": "/path/to/python3.98"}'""" in message


def test_a_runner_version_that_is_no_version_is_refused() -> None:
    with pytest.raises(PluginFailed, match="'latest' of the manifest is no Python version"):
        find_python("latest", {})


def test_pips_index_is_handed_to_uv_unless_uv_has_its_own() -> None:
    listing = (
        "global.index-url='https://mirror.example/simple'\n"
        "global.extra-index-url='file:///opt/a/simple\\nfile:///opt/b/simple'\n"
        "global.cert='/etc/ssl/certs/ca.pem'\n"
        "install.find-links='/opt/wheels'\n"
        ":env:.find-links='/srv/wheels /opt/more'\n"
    )
    pip = parse_pip_config(listing)
    assert uv_index_environment({}, pip) == {
        "UV_DEFAULT_INDEX": "https://mirror.example/simple",
        "UV_INDEX": "file:///opt/a/simple file:///opt/b/simple",
        "UV_INDEX_STRATEGY": "unsafe-best-match",
        "UV_FIND_LINKS": "/srv/wheels,/opt/more",  # PIP_FIND_LINKS wins over the files
        "SSL_CERT_FILE": "/etc/ssl/certs/ca.pem",
    }
    chosen = {"UV_INDEX_URL": "https://uv.example/simple", "UV_INDEX": "x", "SSL_CERT_FILE": "c"}
    assert uv_index_environment(chosen, pip) == {"UV_FIND_LINKS": "/srv/wheels,/opt/more"}
    assert uv_index_environment({}, {}) == {}


def test_a_failed_build_leaves_no_half_built_environment(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "storage_tool", plugin)
    # A requirement uv cannot satisfy without any network: a missing local folder.
    (plugin / "requirements.txt").write_text(f"{tmp_path / 'no-such-project'}\n")
    envs = Environments(tmp_path / "envs")
    with pytest.raises(PluginFailed, match=r"building the plugin environment failed \(uv pip"):
        asyncio.run(envs.ensure(read_plugin_directory(str(plugin))))
    assert [p for p in (tmp_path / "envs").iterdir() if p.is_dir()] == []  # lock files stay


def test_a_build_waits_for_another_service_building_the_same_environment(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "storage_tool", plugin)
    (plugin / "requirements.txt").write_text(f"{tmp_path / 'no-such-project'}\n")
    envs = Environments(tmp_path / "envs")
    plugin_dir = read_plugin_directory(str(plugin))
    env = envs.path_for(plugin_dir.dependency_files, find_python(None, {}))
    env.parent.mkdir()

    async def build_while_locked() -> tuple[bool, BaseException | None]:
        with (env.parent / f".{env.name}.lock").open("w") as other:
            fcntl.flock(other, fcntl.LOCK_EX)  # another service, building it
            build = asyncio.create_task(envs.ensure(plugin_dir))
            for _ in range(10):  # time enough to create the environment, were it not locked
                await asyncio.sleep(0.1)
            started_meanwhile = env.exists() or build.done()
        error = None
        try:
            await build
        except PluginFailed as exc:
            error = exc
        return started_meanwhile, error

    started_meanwhile, error = asyncio.run(build_while_locked())
    assert not started_meanwhile
    assert error is not None  # once the lock was free, it built (and failed, as it must)
