"""Keys on the plugin channel as Dify's daemon reads them: file paths, cleaned.

The daemon stores a plugin's key ``k`` as the file
``path.Join(root, tenant, plugin, path.Clean(k))``, so ``a//b``, ``./a/b``,
``a/b/`` and ``/a/b`` are all the key ``a/b`` there.  The plugin channel
cleans keys the same way before the engine sees them, so a plugin reads back
what it wrote under either spelling on both hosts.  The HTTP API and the
engine keep keys opaque.
"""

from __future__ import annotations

import posixpath

from ..errors import InvalidKey

__all__ = ["clean_key", "go_path_clean"]


def go_path_clean(path: str) -> str:
    """Go's ``path.Clean``: the shortest path naming the same file, by lexical rules alone.

    Repeated slashes become one, ``.`` elements go, an inner ``..`` goes with
    the element before it, a ``..`` right after the root goes, and only the
    root keeps a trailing slash; an empty result is ``.``.  ``posixpath.normpath``
    applies the same rules except one: POSIX lets a path start with exactly
    two slashes, which it keeps and Go does not.
    """
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def clean_key(key: str) -> str:
    """``key`` as the daemon stores it: cleaned, and relative (the join drops a leading ``/``).

    ``InvalidKey`` for a key that cleans to nothing (``""``, ``.``, ``a/..``),
    which on the daemon names the plugin's own folder.  What remains goes
    through the engine's key rules, which refuse ``..`` and ``\\`` as the
    daemon does.
    """
    cleaned = go_path_clean(key).lstrip("/")
    if cleaned in ("", "."):
        raise InvalidKey(f"key {key!r} names no file once cleaned as a path, as Dify's daemon does")
    return cleaned
