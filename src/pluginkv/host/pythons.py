"""The interpreter a plugin runs on: the Python version its manifest asks for.

``meta.runner.version`` (``"3.12"``) names a minor version.  The interpreter
is, in this order: the one ``PLUGINKV_PLUGIN_PYTHONS`` names for it (and
then only that one), the service's own when it is that version,
``python3.12`` on ``PATH``, or the newest ``3.12.*`` under pyenv's
``versions/``.  Each candidate is run once to ask its version, so a pyenv
shim that points at no installed version, or a broken link, is passed over.
A manifest without a runner version runs on the service's own interpreter,
as plugins did before manifests named one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import env_name
from ..errors import PluginFailed

__all__ = ["Interpreter", "find_python", "minor_version"]

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
_ASK = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_PROBE_SECONDS = 20.0  # a cold interpreter on a busy machine; a healthy one answers in ms


@dataclass(frozen=True, slots=True)
class Interpreter:
    path: Path  # absolute, as found (a link is not followed: a venv's python is one)
    version: str  # major.minor.micro


def minor_version(runner_version: str) -> str:
    """``"3.12"`` for ``"3.12"`` or ``"3.12.4"``; ``PluginFailed`` for anything else."""
    match = _VERSION.fullmatch(runner_version.strip())
    if match is None:
        raise PluginFailed(
            f"meta.runner.version {runner_version!r} of the manifest is no Python version "
            'such as "3.12"'
        )
    return f"{match[1]}.{match[2]}"


def find_python(runner_version: str | None, configured: Mapping[str, str]) -> Interpreter:
    """The interpreter for ``runner_version`` (the manifest's; None: the service's own).

    ``configured`` is ``PLUGINKV_PLUGIN_PYTHONS``.  ``PluginFailed`` says, in
    one line, which version is wanted, what was looked for and how to name one.
    """
    if runner_version is None:
        return Interpreter(Path(sys.executable).absolute(), _own_version())
    wanted = minor_version(runner_version)
    setting = env_name("plugin_pythons")
    named = configured.get(wanted) or configured.get(runner_version)
    if named is not None:
        found, why = _probe(Path(named), wanted)
        if found is None:
            raise PluginFailed(
                f"the plugin asks for Python {wanted} (meta.runner.version) and {setting} "
                f"names {named}, which {why}"
            )
        return found
    candidates, looked = _candidates(wanted)
    for label, path in candidates:
        found, why = _probe(path, wanted)
        if found is not None:
            return found
        looked.append(f"{label} {path} {why}")
    example = json.dumps({wanted: f"/path/to/python{wanted}"})
    raise PluginFailed(
        f"the plugin asks for Python {wanted} (meta.runner.version) and none was found "
        f"(looked for: {'; '.join(looked)}): install Python {wanted} or name it with "
        f"{setting}='{example}'"
    )


def _own_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _candidates(wanted: str) -> tuple[list[tuple[str, Path]], list[str]]:
    """The interpreters to try, in order, and the places that offered none."""
    found: list[tuple[str, Path]] = []
    empty: list[str] = []
    own = _own_version()
    if own.startswith(wanted + "."):
        found.append(("the service's own", Path(sys.executable)))
    else:
        empty.append(f"the service's own is {own}")
    on_path = shutil.which(f"python{wanted}")
    if on_path is not None:
        found.append((f"python{wanted} on PATH:", Path(on_path)))
    else:
        empty.append(f"no python{wanted} on PATH")
    root = _pyenv_root()
    if root is None:
        empty.append("no pyenv")
        return found, empty
    versions = [d for d in (root / "versions").glob(f"{wanted}.*") if _VERSION.fullmatch(d.name)]
    versions.sort(key=lambda d: int(d.name.split(".")[2]), reverse=True)
    found += [("pyenv's", d / "bin" / f"python{wanted}") for d in versions]
    if not versions:
        empty.append(f"no pyenv version {root / 'versions' / wanted}.*")
    return found, empty


def _pyenv_root() -> Path | None:
    """``$PYENV_ROOT``, else where ``pyenv root`` says, else ``~/.pyenv`` if it exists."""
    configured = os.environ.get("PYENV_ROOT")
    if configured:
        return Path(configured)
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        try:
            answer = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=_PROBE_SECONDS
            )
        except (OSError, subprocess.SubprocessError):
            answer = None
        if answer is not None and answer.returncode == 0 and answer.stdout.strip():
            return Path(answer.stdout.strip())
    home = Path.home() / ".pyenv"
    return home if home.is_dir() else None


def _probe(path: Path, wanted: str) -> tuple[Interpreter | None, str]:
    """The interpreter at ``path`` if it runs and is version ``wanted``; else why not."""
    try:
        answer = subprocess.run(
            [str(path), "-c", _ASK],
            capture_output=True,
            text=True,
            timeout=_PROBE_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"does not run ({exc.strerror if isinstance(exc, OSError) else exc})"
    version = answer.stdout.strip()
    if answer.returncode != 0:
        lines = answer.stderr.strip().splitlines()
        return None, f"does not run ({lines[0] if lines else f'exit {answer.returncode}'})"
    if not version.startswith(wanted + "."):
        return None, f"is Python {version}"
    return Interpreter(path.absolute(), version), ""
