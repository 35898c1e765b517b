"""Virtual environments for local plugins, built from their ``requirements.txt`` and shared.

An environment is keyed by the hash of the requirements and of the
interpreter, so plugins (and versions of a plugin) with the same requirements
share one, and an unchanged plugin installed again reuses it.  A stamp file
written after a successful install marks it complete; an environment without
one is rebuilt.  pip's own cache keeps the wheels (``dify_plugin`` included)
between builds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

from ..errors import PluginFailed
from ..private_files import private_dir

__all__ = ["Environments"]

logger = logging.getLogger("pluginkv.dify")
_STAMP = ".pluginkv-complete"


class Environments:
    """The plugin environments under ``root``."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self._python = python
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, requirements: bytes) -> Path:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        digest = hashlib.sha256(version.encode() + b"\0" + requirements).hexdigest()[:16]
        return self.root / f"py{version}-{digest}"

    async def ensure(self, requirements_file: Path) -> Path:
        """The interpreter of a complete environment for these requirements, built if needed."""
        requirements = requirements_file.read_bytes()
        env = self.path_for(requirements)
        python = env / "bin" / "python"
        async with self._locks.setdefault(env.name, asyncio.Lock()):
            if (env / _STAMP).exists() and python.exists():
                return python
            logger.info("building the plugin environment %s from %s", env, requirements_file)
            if env.exists():
                shutil.rmtree(env)  # a half-built one
            private_dir(env.parent)
            await _run(self._python, "-m", "venv", str(env))
            await _run(
                str(python),
                *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *("-r", str(requirements_file)),
            )
            (env / _STAMP).write_text(requirements.decode(errors="replace"))
            logger.info("built the plugin environment %s", env)
            return python


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        # pip's harmless notices come first; the reason is at the end.
        tail = output.decode(errors="replace").strip()[-1500:]
        raise PluginFailed(f"building the plugin environment failed ({argv[0]} ...): {tail}")
