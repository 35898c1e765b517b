"""``.difypkg`` files: the zip archives Dify's packager makes of a plugin folder, unpacked to run.

Dify's ``dify plugin package`` zips a plugin folder with its files at the
archive's root (``manifest.yaml``, ``_assets/icon.svg``, ...).  A package is
checked whole before anything is written: its size and its number of
entries against the settings, and every entry's name (no absolute path, no
``..``, no backslash), type (regular files and folders only: a symlink could
point anywhere) and declared size.  The files then go into a fresh folder
beside their final place, and that folder is renamed to
``<author>-<name>-<version>-<hash>`` under ``root`` once complete; a package
unpacked before is reused.  Signatures are not checked (see dify-host.md).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import yaml

from ..config import env_name
from ..errors import InvalidArgument
from .manifest import parse_manifest

__all__ = ["Packages"]

_CHUNK = 1024 * 1024
_UNSAFE_VERSION = re.compile(r"[^A-Za-z0-9._+-]")


class Packages:
    """The unpacked packages under ``root`` (``<data_dir>/dify-packages``)."""

    def __init__(self, root: Path, *, max_bytes: int, max_unpacked_bytes: int, max_files: int):
        self.root = root.absolute()
        self._max_bytes = max_bytes
        self._max_unpacked_bytes = max_unpacked_bytes
        self._max_files = max_files

    def unpack(self, package: Path) -> Path:
        """The folder holding the plugin of ``package``; ``InvalidArgument`` says what is wrong.

        Nothing is written outside ``root``, and nothing at all for a package that is refused.
        """
        if not package.is_absolute():
            raise InvalidArgument(f"plugin package {str(package)!r} must be an absolute path")
        try:
            size = package.stat().st_size
            if size > self._max_bytes:
                raise InvalidArgument(
                    f"plugin package {package} has {size} bytes, more than "
                    f"{env_name('difypkg_max_bytes')}={self._max_bytes}"
                )
            digest = _sha256(package)
            with zipfile.ZipFile(package) as archive:
                members = self._check(archive, package)
                return self._extract(archive, members, digest)
        except zipfile.BadZipFile as exc:
            raise InvalidArgument(f"plugin package {package} is no zip archive: {exc}") from None
        except OSError as exc:
            raise InvalidArgument(f"cannot read plugin package {package}: {exc}") from None

    def _check(self, archive: zipfile.ZipFile, package: Path) -> list[tuple[zipfile.ZipInfo, str]]:
        """Every entry with its safe relative path; raises for the first one that is not safe."""
        entries = archive.infolist()
        if len(entries) > self._max_files:
            raise InvalidArgument(
                f"plugin package {package} has {len(entries)} entries, more than "
                f"{env_name('difypkg_max_files')}={self._max_files}"
            )
        total = sum(info.file_size for info in entries)
        if total > self._max_unpacked_bytes:
            raise InvalidArgument(
                f"plugin package {package} unpacks to {total} bytes, more than "
                f"{env_name('difypkg_max_unpacked_bytes')}={self._max_unpacked_bytes}"
            )
        members: list[tuple[zipfile.ZipInfo, str]] = []
        seen: set[str] = set()
        for info in entries:
            relative = _safe_name(info, package)
            if relative in seen:
                raise InvalidArgument(f"plugin package {package} holds {info.filename!r} twice")
            seen.add(relative)
            members.append((info, relative))
        if "manifest.yaml" not in seen:
            raise InvalidArgument(f"plugin package {package} has no manifest.yaml at its root")
        return members

    def _extract(
        self, archive: zipfile.ZipFile, members: list[tuple[zipfile.ZipInfo, str]], digest: str
    ) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=self.root))
        try:
            for info, relative in members:
                target = staging / relative
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # "x": never through something already there; zipfile stops at the
                # declared size, which the checks counted.
                with archive.open(info) as source, target.open("xb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK)
            final = self.root / _folder_name(staging / "manifest.yaml", digest)
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(staging)  # the same package, unpacked before (or meanwhile)
            return final
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _safe_name(info: zipfile.ZipInfo, package: Path) -> str:
    name = info.filename
    why = None
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if "\\" in name or "\0" in name:
        why = "has a backslash or NUL in its name"
    elif name.startswith("/") or re.match(r"[A-Za-z]:", name):
        why = "is an absolute path"
    elif ".." in PurePosixPath(name).parts:
        why = "leads outside the plugin folder (..)"
    elif stat.S_ISLNK(mode):
        why = "is a symbolic link"
    elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        why = "is no regular file or folder"
    elif info.flag_bits & 0x1:
        why = "is encrypted"
    if why is not None:
        raise InvalidArgument(f"plugin package {package} refused: entry {name!r} {why}")
    relative = PurePosixPath(*[p for p in PurePosixPath(name).parts if p != "."]).as_posix()
    if relative in ("", "."):
        raise InvalidArgument(f"plugin package {package} refused: entry {name!r} has no name")
    return relative


def _folder_name(manifest_file: Path, digest: str) -> str:
    try:
        raw = yaml.safe_load(manifest_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"cannot read the package's manifest.yaml: {exc}") from None
    manifest = parse_manifest(raw)
    version = _UNSAFE_VERSION.sub("_", manifest.version)[:64] or "0"
    return f"{manifest.author}-{manifest.name}-{version}-{digest[:12]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
