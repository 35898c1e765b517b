"""What a plugin declares about itself at registration, as far as the host needs it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument

__all__ = ["DEFAULT_STORAGE_BYTES", "Manifest", "parse_manifest"]

# The daemon's rules for the parts of the plugin id (checked at registration's end).
_AUTHOR = re.compile(r"[a-z0-9_-]{1,64}")
_NAME = re.compile(r"[a-z0-9_-]{1,128}")
# The SDK's default for resource.permission.storage.size (1 MiB; it allows 1 KiB to 1 GiB).
DEFAULT_STORAGE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Manifest:
    author: str
    name: str
    version: str
    storage_enabled: bool
    storage_bytes: int
    endpoint_enabled: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def plugin_id(self) -> str:
        """``author/name``: the plugin's storage scope, without a version."""
        return f"{self.author}/{self.name}"

    @property
    def runner_version(self) -> str | None:
        """The Python version it asks for (``meta.runner.version``, ``"3.12"``), if any."""
        runner = _object(_object(self.raw.get("meta")).get("runner"))
        version = runner.get("version")
        if isinstance(version, int | float):  # YAML reads an unquoted 3.12 as a number
            version = str(version)
        if not isinstance(version, str) or not version.strip():
            return None
        return version.strip()


def parse_manifest(data: object) -> Manifest:
    """The manifest of a ``manifest_declaration``; ``InvalidArgument`` names what is wrong."""
    if not isinstance(data, dict):
        raise InvalidArgument("the manifest declaration is not an object")
    author, name = data.get("author"), data.get("name")
    if not isinstance(author, str) or _AUTHOR.fullmatch(author) is None:
        raise InvalidArgument(f"manifest author {author!r} must match [a-z0-9_-]{{1,64}}")
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidArgument(f"manifest name {name!r} must match [a-z0-9_-]{{1,128}}")
    permission = _object(_object(data.get("resource")).get("permission"))
    storage = permission.get("storage")
    # The daemon grants storage only when the manifest asks for it.
    enabled = isinstance(storage, dict) and storage.get("enabled") is True
    size = storage.get("size") if isinstance(storage, dict) else None
    if type(size) is not int or size < 0:
        size = DEFAULT_STORAGE_BYTES
    version = data.get("version")
    return Manifest(
        author=author,
        name=name,
        version=version if isinstance(version, str) else "",
        storage_enabled=enabled,
        storage_bytes=size,
        endpoint_enabled=_object(permission.get("endpoint")).get("enabled") is True,
        raw=data,
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
