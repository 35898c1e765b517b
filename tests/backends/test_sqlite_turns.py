"""Writers of one SQLite file in several processes take turns (``sqlite_turns.py``)."""

from __future__ import annotations

import fcntl
import os
import signal
import traceback
from pathlib import Path

import pytest

import pluginkv
from pluginkv import BackendUnavailable
from pluginkv.backends.sqlite_turns import TURNS_SUFFIX


def _fork(work: object) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            work()  # type: ignore[operator]
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def test_writers_in_several_processes_lose_no_increment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pluginkv.db'}"
    with pluginkv.open_store(url) as store:
        store.storage(workspace="w", plugin="a/b").set("n", b"0")

    def count() -> None:
        with pluginkv.open_store(url) as mine:
            storage = mine.storage(workspace="w", plugin="a/b")
            mine_key = f"k{os.getpid()}"
            for _ in range(150):
                storage.incr("n")  # its own transaction
                storage.set(mine_key, b"x")  # one statement
                storage.delete(mine_key)
                with mine.backend.group():  # as the service's writer runs a group
                    storage.incr("n")
                    storage.set(mine_key, b"x")

    pids = [_fork(count) for _ in range(3)]
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    with pluginkv.open_store(url) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        assert storage.get("n") == b"900"
        assert storage.usage().keys == 4
    turns = tmp_path / f"pluginkv.db{TURNS_SUFFIX}"
    assert turns.stat().st_mode & 0o777 == 0o600


def test_a_turn_held_past_the_busy_timeout_fails_the_write_naming_the_setting(
    tmp_path: Path,
) -> None:
    db = tmp_path / "pluginkv.db"
    with pluginkv.open_store(f"sqlite:///{db}", sqlite_busy_timeout_ms=100) as store:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"v")
        read, write = os.pipe()

        def hold() -> None:  # a process stopped in the middle of its turn
            fd = os.open(str(db) + TURNS_SUFFIX, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(write, b"held")
            signal.pause()

        holder = _fork(hold)
        try:
            assert os.read(read, 4) == b"held"
            with pytest.raises(BackendUnavailable, match="PLUGINKV_SQLITE_BUSY_TIMEOUT_MS"):
                storage.set("k", b"w")
            with pytest.raises(BackendUnavailable, match="PLUGINKV_SQLITE_BUSY_TIMEOUT_MS"):
                storage.delete("k")
            assert storage.get("k") == b"v"  # nothing changed, and reads go on
        finally:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)
            os.close(read)
            os.close(write)
        storage.set("k", b"w")  # the turn died with its holder
        assert storage.get("k") == b"w"
