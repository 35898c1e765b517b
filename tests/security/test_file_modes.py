"""What pluginkv keeps on disk is its user's alone, whatever the umask.

The data directory is 0700; the database, its ``-wal``, ``-shm`` and reserve,
the token secret, and the endpoint and install records are 0600.  A store
left wider by an older version is tightened on start, with one log line.
Where the test can create a second user (as root), that user tries to read
every file.
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pluginkv
from pluginkv.backends.full_disk import SUFFIX
from pluginkv.backends.sqlite_turns import TURNS_SUFFIX
from pluginkv.host.endpoints import ENDPOINTS_FILE, Endpoints
from pluginkv.host.installs import INSTALLS_FILE, Install, Installs
from pluginkv.private_files import DATA_DIR_FILES
from pluginkv.services.tokens import SECRET_FILE, load_secret

from ..server.test_serve import Service

SERVICE_FILES = [
    "pluginkv.db",
    "pluginkv.db-wal",
    "pluginkv.db-shm",
    "pluginkv.db-reserve",
    "token-secret",
]
RECORDS = [ENDPOINTS_FILE, INSTALLS_FILE]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(name="umask_022")
def _umask_022() -> Iterator[None]:
    """The common default umask, under which files come out 0644 unless made otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def run_service_once(data_dir: Path) -> str:
    """Start ``pluginkv serve`` on ``data_dir``, write a key, stop it; its output."""
    service = Service(data_dir)
    service.start()
    try:
        token = service.token("--workspace", "ws", "--plugin", "acme/weather")
        assert service.call("PUT", "/v1/kv/k", token, b"secret value")[0] == 204
        for name in SERVICE_FILES:  # -wal and -shm live while the service runs
            assert (data_dir / name).exists(), name
            assert mode(data_dir / name) == 0o600, name
    finally:
        code, output = service.stop()
    assert code in (0, -15), output
    return output


def write_records(data_dir: Path) -> None:
    Endpoints(data_dir).create("ws", "acme/weather", {"api_key": "sk-secret"})
    Installs(data_dir).save([Install("acme/weather", "/plugins/weather", ("ws",))])


def test_the_service_keeps_its_data_directory_private_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    data_dir = tmp_path / "data"
    run_service_once(data_dir)
    write_records(data_dir)

    assert mode(data_dir) == 0o700
    for name in [*SERVICE_FILES, *RECORDS]:
        if (data_dir / name).exists():  # -wal and -shm go when the last connection closes
            assert mode(data_dir / name) == 0o600, name


def test_records_written_into_a_new_directory_are_private_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    data_dir = tmp_path / "new" / "data"
    write_records(data_dir)
    assert mode(tmp_path / "new") == mode(data_dir) == 0o700
    for name in RECORDS:
        assert mode(data_dir / name) == 0o600, name
    assert sorted(path.name for path in data_dir.iterdir()) == sorted(RECORDS)  # no temporary


def test_a_library_store_creates_its_files_private_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    database = tmp_path / "made" / "by" / "pluginkv.db"
    with pluginkv.open_store(f"sqlite:///{database}", sqlite_disk_reserve_bytes=4096) as store:
        store.storage(workspace="ws", plugin="acme/weather").set("k", b"v")
        names = ["pluginkv.db", "pluginkv.db-wal", "pluginkv.db-shm", "pluginkv.db-reserve"]
        for name in [*names, "pluginkv.db" + TURNS_SUFFIX]:
            assert mode(database.parent / name) == 0o600, name
    assert mode(tmp_path / "made") == mode(tmp_path / "made" / "by") == 0o700


def test_an_existing_store_is_tightened_on_start_with_one_log_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with pluginkv.open_store(f"sqlite:///{data_dir}/pluginkv.db") as store:
        store.storage(workspace="ws", plugin="acme/weather").set("k", b"v")
    load_secret(pluginkv.Settings(data_dir=str(data_dir)))
    write_records(data_dir)
    data_dir.chmod(0o755)  # as an older version left them
    for path in data_dir.iterdir():
        path.chmod(0o644)

    output = run_service_once(data_dir)

    assert [line for line in output.splitlines() if "tightened" in line] == [
        next(line for line in output.splitlines() if "tightened" in line)
    ]
    assert mode(data_dir) == 0o700
    for name in [*SERVICE_FILES, *RECORDS]:
        if (data_dir / name).exists():
            assert mode(data_dir / name) == 0o600, name


def test_a_library_store_tightens_its_database_files_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "pluginkv.db"
    pluginkv.open_store(f"sqlite:///{database}").close()
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="pluginkv")

    pluginkv.open_store(f"sqlite:///{database}").close()

    assert [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()] == [
        f"tightened the files of SQLite database {database} so only their owner can read "
        "them: pluginkv.db 644->600, pluginkv.db-reserve 644->600, pluginkv.db-turns 644->600"
    ]
    assert mode(database) == 0o600


def test_the_tightened_names_are_those_pluginkv_writes() -> None:
    written = {SECRET_FILE, ENDPOINTS_FILE, INSTALLS_FILE, "pluginkv.db" + SUFFIX}
    written.add("pluginkv.db" + TURNS_SUFFIX)
    written |= {"pluginkv.db", "pluginkv.db-wal", "pluginkv.db-shm"}
    assert set(DATA_DIR_FILES) == written


# -- a second user ---------------------------------------------------------------------------
@pytest.fixture(name="other_user")
def _other_user() -> Iterator[pwd.struct_passwd]:
    """A throwaway system user, removed afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        if os.environ.get("CI"):
            pytest.fail("creating a second user needs root and useradd, which CI has")
        pytest.skip("creating a second user needs root and useradd")
    name = "pkvtest" + secrets.token_hex(4)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=True)


def read_as(user: pwd.struct_passwd, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
    )


@pytest.fixture(name="open_parent")
def _open_parent() -> Iterator[Path]:
    """A directory everyone may enter (pytest's own temporary directories are 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="pluginkv-modes-"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent)


def test_another_user_can_read_none_of_the_files(
    open_parent: Path, other_user: pwd.struct_passwd
) -> None:
    data_dir = open_parent / "data"
    service = Service(data_dir)
    service.start()
    try:
        token = service.token("--workspace", "ws", "--plugin", "acme/weather")
        assert service.call("PUT", "/v1/kv/k", token, b"secret value")[0] == 204
        write_records(data_dir)
        files = [data_dir / name for name in [*SERVICE_FILES, *RECORDS]]
        assert all(path.exists() for path in files)
        assert read_as(other_user, "ls", str(open_parent)).returncode == 0  # the test can fail

        listing = read_as(other_user, "ls", str(data_dir))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
        # Even with the directory opened to others, each file stays closed.
        data_dir.chmod(0o711)
        for path in files:
            read = read_as(other_user, "cat", str(path))
            assert read.returncode != 0 and "Permission denied" in read.stderr, path
    finally:
        data_dir.chmod(0o700)
        service.stop()
