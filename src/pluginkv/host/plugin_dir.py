"""Reading a plugin directory: its manifest and the declarations its YAML files hold.

A local plugin sends no declarations (``docs/dify-protocol.md`` §2.1): its first
line is the bare manifest, which names its tool and endpoint YAML files by
path only.  So the host reads the files itself, from the directory the
plugin runs in, and expands them as a remote plugin's registration would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import InvalidArgument
from .manifest import Manifest, parse_manifest

__all__ = ["PluginDirectory", "read_plugin_directory"]


class PluginDirectory:
    """A plugin folder: ``manifest.yaml``, its declarations, its dependency files."""

    def __init__(self, path: Path, manifest: Manifest, declarations: dict[str, list[Any]]) -> None:
        self.path = path
        self.manifest = manifest
        self.declarations = declarations

    @property
    def dependency_files(self) -> list[Path]:
        """What its environment is built from, as Dify's daemon picks it.

        ``pyproject.toml`` (with ``uv.lock`` when there is one) when present,
        else ``requirements.txt``.
        """
        pyproject = self.path / "pyproject.toml"
        if pyproject.is_file():
            lock = self.path / "uv.lock"
            return [pyproject, lock] if lock.is_file() else [pyproject]
        return [self.path / "requirements.txt"]

    @property
    def entrypoint(self) -> str:
        """The module ``python -m`` runs (``meta.runner.entrypoint``, normally ``main``)."""
        runner = self.manifest.raw.get("meta", {}).get("runner", {})
        entry = runner.get("entrypoint") if isinstance(runner, dict) else None
        return entry if isinstance(entry, str) and entry else "main"


def read_plugin_directory(directory: str) -> PluginDirectory:
    """The plugin in ``directory`` (an absolute path); ``InvalidArgument`` says what is wrong."""
    try:
        path = Path(directory)
        if not path.is_absolute():
            raise InvalidArgument(f"plugin directory {directory!r} must be an absolute path")
        path = path.resolve()
        if not (path / "manifest.yaml").is_file():
            raise InvalidArgument(f"{directory!r} is no plugin directory: no manifest.yaml")
        if not (path / "_assets").is_dir():
            # The SDK crashes at start-up without it (it scans it unconditionally).
            raise InvalidArgument(f"plugin directory {directory!r} has no _assets/ folder")
        if not any((path / name).is_file() for name in ("pyproject.toml", "requirements.txt")):
            raise InvalidArgument(
                f"plugin directory {directory!r} has no pyproject.toml and no requirements.txt"
            )
        raw = _load(path, "manifest.yaml")
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, say
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"cannot read plugin directory {directory!r}: {exc}") from None
    manifest = parse_manifest(raw)
    listed = raw.get("plugins")
    plugins: dict[str, Any] = listed if isinstance(listed, dict) else {}
    declarations: dict[str, list[Any]] = {}
    tools = [_provider(path, file) for file in _paths(plugins.get("tools"))]
    if tools:
        declarations["tool"] = tools
    endpoints = [_endpoint_group(path, file) for file in _paths(plugins.get("endpoints"))]
    if endpoints:
        declarations["endpoint"] = endpoints
    if not declarations:
        raise InvalidArgument(f"the plugin in {directory!r} declares no tool and no endpoint")
    return PluginDirectory(path, manifest, declarations)


def _paths(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _load(root: Path, relative: str) -> dict[str, Any]:
    file = (root / relative).resolve()
    if not file.is_relative_to(root):
        raise InvalidArgument(f"{relative!r} points outside the plugin directory")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"cannot read {relative} of the plugin: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{relative} of the plugin is not a YAML mapping")
    return data


def _provider(root: Path, relative: str) -> dict[str, Any]:
    provider = _load(root, relative)
    provider["tools"] = [_load(root, tool) for tool in _paths(provider.get("tools"))]
    return provider


def _endpoint_group(root: Path, relative: str) -> dict[str, Any]:
    group = _load(root, relative)
    group["endpoints"] = [_load(root, one) for one in _paths(group.get("endpoints"))]
    return group
