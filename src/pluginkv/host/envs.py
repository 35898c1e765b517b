"""Virtual environments for local plugins, built with uv as Dify's daemon builds them, and shared.

A plugin directory with ``pyproject.toml`` and ``uv.lock`` gets
``uv sync --frozen --no-dev``: exactly the locked packages.  With
``pyproject.toml`` alone, its dependencies go in with ``uv pip install -r
pyproject.toml`` (the daemon's ``uv sync`` would write a lock file into the
plugin's folder); with only ``requirements.txt``, with ``uv pip install -r
requirements.txt``.  Prereleases are allowed, as the daemon allows them.

The interpreter is the one the manifest asks for (``pythons.py``), and uv
never downloads one.  uv is the ``uv`` package pluginkv depends on; it is
pointed at pip's configured index (``package_index.py``).

An environment is keyed by the hash of the dependency files and of the
interpreter, so plugins (and versions of a plugin) with the same
dependencies share one, and an unchanged plugin installed again reuses it.
A stamp file written after a successful build marks it complete; a build
that fails, or is cancelled, is removed, and an environment without a stamp
is rebuilt.  A lock file beside each environment makes services that share
the folder (``PLUGINKV_PLUGIN_ENVS_DIR``) build it one at a time.  uv's own
cache keeps the wheels between builds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ..errors import PluginFailed
from ..private_files import private_dir
from .package_index import uv_index_environment
from .plugin_dir import PluginDirectory
from .pythons import Interpreter, find_python

__all__ = ["Environments", "uv_binary"]

logger = logging.getLogger("pluginkv.dify")
_STAMP = ".pluginkv-complete"


def uv_binary() -> str:
    """The uv executable of the ``uv`` package; ``PluginFailed`` when it is not installed."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise PluginFailed(
            "uv is not installed beside pluginkv: install the server extra "
            "(pip install 'pluginkv[server]')"
        ) from None


class Environments:
    """The plugin environments under ``root``; ``pythons`` is ``PLUGINKV_PLUGIN_PYTHONS``."""

    def __init__(self, root: Path, pythons: Mapping[str, str] | None = None) -> None:
        self.root = root.absolute()  # uv resolves a relative one against the plugin's folder
        self._pythons = dict(pythons or {})
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, files: list[Path], interpreter: Interpreter) -> Path:
        digest = hashlib.sha256(f"{interpreter.version}\0{interpreter.path}\0".encode())
        for file in files:
            digest.update(f"{file.name}\0".encode() + file.read_bytes() + b"\0")
        minor = ".".join(interpreter.version.split(".")[:2])
        return self.root / f"py{minor}-{digest.hexdigest()[:16]}"

    async def ensure(self, plugin: PluginDirectory) -> Path:
        """The interpreter of a complete environment for ``plugin``, built if needed."""
        runner = plugin.manifest.runner_version
        interpreter = await asyncio.to_thread(find_python, runner, self._pythons)
        files = plugin.dependency_files
        try:
            env = self.path_for(files, interpreter)
        except OSError as exc:
            raise PluginFailed(f"cannot read the plugin's {exc.filename}: {exc.strerror}") from None
        python = env / "bin" / "python"
        if (env / _STAMP).exists() and python.exists():
            return python
        private_dir(env.parent)
        async with (
            self._locks.setdefault(env.name, asyncio.Lock()),
            _exclusive(env.parent / f".{env.name}.lock"),
        ):
            if (env / _STAMP).exists() and python.exists():
                return python  # built meanwhile, here or by another service
            names = " + ".join(file.name for file in files)
            logger.info(
                "building the plugin environment %s from %s on Python %s (%s)",
                *(env, names, interpreter.version, interpreter.path),
            )
            if env.exists():
                await asyncio.to_thread(shutil.rmtree, env)  # a half-built one
            try:
                await _build(env, plugin.path, files, interpreter)
                (env / _STAMP).write_text(f"{interpreter.path}\n{names}\n")
            except BaseException:  # failed or cancelled: leave nothing half-built behind
                await asyncio.to_thread(shutil.rmtree, env, True)
                raise
            logger.info("built the plugin environment %s", env)
            return python


@contextlib.asynccontextmanager
async def _exclusive(path: Path) -> AsyncIterator[None]:
    """Hold an advisory lock on ``path``: services sharing the folder build one at a time.

    Polled rather than waited for in a thread, so a cancelled install leaves no lock held.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _build(env: Path, project: Path, files: list[Path], interpreter: Interpreter) -> None:
    uv = uv_binary()
    environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # not the service's
    environ.update(uv_index_environment(environ))
    # Bytecode compiled now, as pip does and the daemon does after uv: not at each first start.
    environ.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", UV_COMPILE_BYTECODE="1")
    environ["UV_PROJECT_ENVIRONMENT"] = str(env)
    common = ("--no-python-downloads", "--prerelease=allow")
    if [f.name for f in files] == ["pyproject.toml", "uv.lock"]:
        await _run(
            environ,
            project,
            *(uv, "sync", "--frozen", "--no-dev", *common),
            *("--python", str(interpreter.path), "--project", str(project)),
        )
        return
    await _run(environ, project, uv, "venv", "--quiet", str(env), "--python", str(interpreter.path))
    await _run(
        environ,
        project,
        *(uv, "pip", "install", *common, "--python", str(env / "bin" / "python")),
        *("-r", str(files[0])),
    )


async def _run(environ: dict[str, str], cwd: Path, *argv: str) -> None:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environ,
        )
    except OSError as exc:
        raise PluginFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        output, _ = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    text = output.decode(errors="replace").strip()
    logger.debug("%s: %s", " ".join(argv[1:3]), text)
    if process.returncode != 0:
        # The reason is at the end; what went before is progress.
        tail = text[-1500:]
        what = " ".join(argv[1:3]) if argv[1] == "pip" else argv[1]
        raise PluginFailed(f"building the plugin environment failed (uv {what}): {tail}")
