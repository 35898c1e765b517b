"""Build (or reuse) the virtual environment that holds Dify's ``dify_plugin`` SDK.

The SDK monkey-patches its process with gevent on import, so it never goes
into the test runner's interpreter: plugins run in their own processes on the
interpreter of this environment.  It lives at ``.cache/dify-sdk-venv-<pin>``
inside the repository (git-ignored) and is reused while its stamp file names
the same pin; a changed pin or an interrupted build means a fresh build.

Run as a script (``python tests/dify/sdk_venv.py``, ``make dify-sdk``) it
builds the environment and prints the path of its interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

# The release dify-protocol.md was checked against; 0.8 and later need Python 3.12.
PIN = "dify_plugin==0.7.4"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / f"dify-sdk-venv-{PIN.split('==')[1]}"
STAMP = VENV / ".pluginkv-stamp"


def python() -> Path:
    return VENV / "bin" / "python"


def is_ready() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == PIN and python().exists()


def ensure() -> Path:
    """The interpreter of a complete SDK environment, built first if needed."""
    if is_ready():
        return python()
    if VENV.exists():
        shutil.rmtree(VENV)  # a stale pin or a half-done build
    VENV.parent.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, PIN], check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    STAMP.write_text(PIN + "\n")
    return python()


if __name__ == "__main__":
    sys.stdout.write(f"{ensure()}\n")
