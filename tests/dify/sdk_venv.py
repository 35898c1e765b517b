"""Build (or reuse) the virtual environments that hold Dify's ``dify_plugin`` SDK, one per release.

The SDK monkey-patches its process with gevent on import, so it never goes
into the test runner's interpreter: plugins run in their own processes on the
interpreter of these environments.  Each lives at
``.cache/dify-sdk-venv-<version>[-py<python>]`` inside the repository
(git-ignored) and is reused while its stamp file names the same pin; a changed
pin or an interrupted build means a fresh build.

``SDK_0_7`` (0.7.4, the first release the host was checked against) runs on
the test runner's own Python; ``SDK_0_10`` (today's generation, which needs
Python 3.12) on the Python 3.12 that ``pluginkv.host.pythons`` finds, as the
host finds it for a manifest that asks for 3.12 (``PLUGINKV_PLUGIN_PYTHONS``
names one where it is elsewhere); uv builds that one.

Run as a script (``python tests/dify/sdk_venv.py``, ``make dify-sdk``) it
builds every environment and prints the paths of their interpreters.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Sdk:
    version: str
    python: str | None = None  # a minor version; None: the test runner's own interpreter

    @property
    def pin(self) -> str:
        return f"dify_plugin=={self.version}"

    @property
    def venv(self) -> Path:
        suffix = "" if self.python is None else f"-py{self.python}"
        return ROOT / ".cache" / f"dify-sdk-venv-{self.version}{suffix}"

    @property
    def stamp(self) -> Path:
        return self.venv / ".pluginkv-stamp"


SDK_0_7 = Sdk("0.7.4")
SDK_0_10 = Sdk("0.10.2", "3.12")  # the newest 0.10.x; examples/storage_tool_v2 locks the same
SDKS = (SDK_0_7, SDK_0_10)
# The defaults, as the tests and benchmarks have always used them.
PIN = SDK_0_7.pin
VENV = SDK_0_7.venv


def python(sdk: Sdk = SDK_0_7) -> Path:
    return sdk.venv / "bin" / "python"


def is_ready(sdk: Sdk = SDK_0_7) -> bool:
    return sdk.stamp.exists() and sdk.stamp.read_text().strip() == sdk.pin and python(sdk).exists()


def ensure(sdk: Sdk = SDK_0_7) -> Path:
    """The interpreter of a complete SDK environment, built first if needed.

    ``OSError`` or ``subprocess.CalledProcessError`` when it cannot be built;
    ``pluginkv.PluginFailed`` when no interpreter of the version it needs exists.
    """
    if is_ready(sdk):
        return python(sdk)
    sdk.venv.parent.mkdir(parents=True, exist_ok=True)
    # Test processes running side by side (pytest-xdist) build each environment once.
    with open(sdk.venv.parent / f".{sdk.venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_ready(sdk):
            _build(sdk)
    return python(sdk)


def _build(sdk: Sdk) -> None:
    if sdk.venv.exists():
        shutil.rmtree(sdk.venv)  # a stale pin or a half-done build
    env = {**os.environ, "PIP_NO_INPUT": "1", "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    if sdk.python is None:
        venv.EnvBuilder(with_pip=True, clear=True).create(sdk.venv)
        pip = [str(python(sdk)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, sdk.pin], check=True, env=env)
    else:
        from pluginkv.host.envs import uv_binary
        from pluginkv.host.package_index import uv_index_environment
        from pluginkv.host.pythons import find_python
        from pluginkv.store import load_settings

        interpreter = find_python(sdk.python, load_settings().plugin_pythons)
        env.update(uv_index_environment(env))
        uv = uv_binary()
        venv_args = ["--quiet", "--python", str(interpreter.path), str(sdk.venv)]
        subprocess.run([uv, "venv", *venv_args], check=True, env=env)
        install = ["--quiet", "--python", str(python(sdk)), sdk.pin]
        subprocess.run([uv, "pip", "install", *install], check=True, env=env)
    sdk.stamp.write_text(sdk.pin + "\n")


if __name__ == "__main__":
    for each in SDKS:
        sys.stdout.write(f"{ensure(each)}\n")
