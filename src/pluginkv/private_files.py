"""What pluginkv keeps on disk is its user's alone: directories 0700, files 0600.

Values, the token secret and endpoint settings (which hold API keys) sit in
these files, so no other account on the host may read them, whatever the
umask.  Files are created with their final mode (never briefly wider), and a
store created by an older version is tightened when it is opened, with one
log line naming what changed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DATA_DIR_FILES",
    "DIR_MODE",
    "FILE_MODE",
    "create_private_file",
    "private_dir",
    "secure_data_dir",
    "tighten",
    "write_private_text",
]

logger = logging.getLogger("pluginkv")

DIR_MODE = 0o700
FILE_MODE = 0o600

# What the service keeps in its data directory (a test holds these equal to
# the names the writing modules use).  Only these are tightened: the data
# directory may be one the operator also uses for other things.
DATA_DIR_FILES = (
    "pluginkv.db",
    "pluginkv.db-wal",
    "pluginkv.db-shm",
    "pluginkv.db-reserve",
    "pluginkv.db-turns",
    "token-secret",
    "dify-endpoints.json",
    "dify-plugins.json",
)


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as it is."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for folder in missing:  # mkdir's mode is masked by the umask, and parents get 0777 & ~umask
        os.chmod(folder, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a 0600 temporary file and a rename.

    A crash leaves the old content or the new, never half of one, and the file
    is never readable by others, not even for a moment.
    """
    private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, FILE_MODE)  # a temporary left by a crash may be wider
        file.write(text)
    os.replace(temporary, path)


def tighten(paths: Iterable[tuple[Path, int]]) -> list[str]:
    """Remove group and other bits from each existing ``(path, mode)``; what changed, as text."""
    changed = []
    for path, mode in paths:
        try:
            current = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        if path.is_symlink() or not current & 0o077:
            continue
        os.chmod(path, mode)
        changed.append(f"{path.name} {current:o}->{mode:o}")
    return changed


def secure_data_dir(data_dir: Path) -> None:
    """Tighten an existing data directory and the files pluginkv keeps in it (0700, 0600)."""
    entries = [(data_dir, DIR_MODE)]
    entries += [(data_dir / name, FILE_MODE) for name in DATA_DIR_FILES]
    entries += [(data_dir / (name + ".tmp"), FILE_MODE) for name in DATA_DIR_FILES]
    try:
        changed = tighten(entries)
    except OSError as exc:  # a file of another owner: whoever reads it next says so
        logger.error("cannot tighten the modes in %s: %s", data_dir, exc)
        return
    if changed:
        logger.warning(
            "tightened %s so only its owner can read it: %s", data_dir, ", ".join(changed)
        )
