"""``.difypkg`` files: unpacked only when every entry is safe and within the limits."""

from __future__ import annotations

import contextlib
import json
import stat
import zipfile
from pathlib import Path

import pytest

from pluginkv.errors import InvalidArgument
from pluginkv.host.difypkg import Packages

from .conftest import V2, HostService
from .test_installs import make_difypkg

MANIFEST = b"version: 0.1.0\ntype: plugin\nauthor: acme\nname: notes\n"


def packages(root: Path, **limits: int) -> Packages:
    settings = {"max_bytes": 1 << 20, "max_unpacked_bytes": 1 << 20, "max_files": 100}
    return Packages(root, **{**settings, **limits})


def package(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.yaml", MANIFEST)
        for name, data in entries:
            archive.writestr(name, data)
    return path


def symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def everything_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


def test_a_package_unpacks_under_its_root_named_by_its_manifest(tmp_path: Path) -> None:
    pkg = package(tmp_path / "notes.difypkg", [("_assets/icon.svg", b"<svg/>"), ("./main.py", b"")])
    unpacked = packages(tmp_path / "root").unpack(pkg)
    assert unpacked.parent == tmp_path / "root"
    assert unpacked.name.startswith("acme-notes-0.1.0-")
    assert (unpacked / "_assets" / "icon.svg").read_bytes() == b"<svg/>"
    assert (unpacked / "manifest.yaml").read_bytes() == MANIFEST
    assert packages(tmp_path / "root").unpack(pkg) == unpacked  # the same package: reused
    assert [p.name for p in (tmp_path / "root").iterdir()] == [unpacked.name]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        pytest.param(("../outside.txt", b"x"), "leads outside the plugin folder", id="dotdot"),
        pytest.param(("a/../../outside.txt", b"x"), "leads outside", id="nested-dotdot"),
        pytest.param(("/tmp/outside.txt", b"x"), "is an absolute path", id="absolute"),
        pytest.param(("C:/outside.txt", b"x"), "is an absolute path", id="drive"),
        pytest.param(("a\\..\\..\\outside.txt", b"x"), "has a backslash", id="backslash"),
        pytest.param(symlink("link", "/etc"), "is a symbolic link", id="symlink"),
        pytest.param(("manifest.yaml", b"again"), "twice", id="duplicate"),
    ],
)
def test_a_hostile_entry_is_refused_and_nothing_is_written(
    tmp_path: Path, entry: tuple[str | zipfile.ZipInfo, bytes], why: str
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    # zipfile warns of a duplicate name, and writes it all the same.
    duplicate = pytest.warns(UserWarning) if why == "twice" else contextlib.nullcontext()
    with duplicate:
        pkg = package(workdir / "bad.difypkg", [("main.py", b""), entry])
    before = everything_under(tmp_path)
    with pytest.raises(InvalidArgument, match=why):
        packages(workdir / "root").unpack(pkg)
    assert everything_under(tmp_path) == before


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        pytest.param({"max_bytes": 100}, "PLUGINKV_DIFYPKG_MAX_BYTES=100", id="file"),
        pytest.param(
            {"max_unpacked_bytes": 50_000},
            "unpacks to 100053 bytes, more than PLUGINKV_DIFYPKG_MAX_UNPACKED_BYTES=50000",
            id="unpacked",
        ),
        pytest.param({"max_files": 2}, "3 entries, more than PLUGINKV_DIFYPKG_MAX_FILES=2", id="n"),
    ],
)
def test_a_package_over_a_limit_is_refused_naming_the_setting(
    tmp_path: Path, limits: dict[str, int], setting: str
) -> None:
    # 100 kB of zeros: a few hundred bytes compressed, the zip bomb's trick in small.
    with zipfile.ZipFile(tmp_path / "big.difypkg", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.yaml", MANIFEST)
        archive.writestr("zeros.bin", bytes(100_000))
        archive.writestr("main.py", b"")
    with pytest.raises(InvalidArgument, match=setting):
        packages(tmp_path / "root", **limits).unpack(tmp_path / "big.difypkg")
    assert not (tmp_path / "root").exists()


def test_a_file_that_is_no_zip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plugin.difypkg").write_bytes(b"not a zip")
    with pytest.raises(InvalidArgument, match="is no zip archive"):
        packages(tmp_path / "root").unpack(tmp_path / "plugin.difypkg")


def test_a_hostile_package_is_a_400_through_the_install_route(
    service: HostService, tmp_path: Path
) -> None:
    pkg = make_difypkg(V2, tmp_path / "bad.difypkg")
    with zipfile.ZipFile(pkg, "a") as archive:
        archive.writestr("../../escaped.txt", b"x")
    body = {"directory": str(pkg), "workspace": "v2-bad"}
    status, answer = service.call("POST", "/v1/admin/plugins/install", body)
    assert status == 400, answer
    assert "'../../escaped.txt' leads outside" in json.loads(answer)["error"]["message"]
    assert not (service.data_dir.parent / "escaped.txt").exists()
    assert not (service.data_dir / "escaped.txt").exists()
