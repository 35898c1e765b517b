"""``kv txn``, ``kv watch`` and metadata on the command line, on a database (``--db``).

The same commands against the service are in tests/client/test_changes_end_to_end.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import pluginkv
from pluginkv import Store
from pluginkv.cli import EXIT_CONFLICT, EXIT_ERROR, main

Run = Callable[..., Result]
SCOPE = {"workspace": "ws-1", "plugin": "acme/weather"}


@pytest.fixture(autouse=True)
def _no_pluginkv_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PLUGINKV_"):
            monkeypatch.delenv(name)


@pytest.fixture(name="db")
def _db(tmp_path: Path) -> Path:
    path = tmp_path / "kv.db"
    Store(pluginkv.config.Settings(database_url=f"sqlite:///{path}")).close()
    return path


@pytest.fixture(name="run")
def _run(db: Path) -> Run:
    """``run("kv", "txn", "-", input=...)``: the command with --db and the scope options."""
    runner = CliRunner()

    def run(*argv: str, input: Any = None) -> Result:
        scope = ["--db", f"sqlite:///{db}", "--workspace", "ws-1", "--plugin", "acme/weather"]
        return runner.invoke(main, [*argv[:2], *scope, *argv[2:]], input=input)

    return run


def _storage(db: Path) -> tuple[Store, pluginkv.Storage]:
    store = pluginkv.open_store(f"sqlite:///{db}")
    return store, store.storage(**SCOPE)


def _txn(**body: Any) -> str:
    return json.dumps(body)


def test_txn_commits_every_operation_and_prints_the_versions(run: Run, db: Path) -> None:
    run("kv", "set", "a", "old")
    body = _txn(
        checks=[{"key": "a", "version": 1}, {"key": "lock", "version": None}],
        operations=[
            {"op": "set", "key": "a", "value": {"text": "x"}, "content_type": "text/plain"},
            {"op": "set", "key": "b", "value": {"base64": "/w=="}, "metadata": {"by": "u1"}},
            {"op": "incr", "key": "n", "delta": 5},
            {"op": "delete", "key": "gone"},
        ],
    )

    result = run("kv", "txn", "-", input=body)

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["ok"] is True and set(answer["versions"]) == {"a", "b", "n"}
    assert answer["counters"] == {"n": 5}
    store, storage = _storage(db)
    with store:
        assert storage.get("a") == b"x" and storage.get("b") == b"\xff"
        entry = storage.get_entry("b")
        assert entry is not None and entry.metadata == {"by": "u1"}


def test_txn_exits_4_and_changes_nothing_when_a_check_fails(run: Run, db: Path) -> None:
    run("kv", "set", "lock", "held")
    body = _txn(
        checks=[{"key": "lock", "version": None}],
        operations=[{"op": "set", "key": "a", "value": {"text": "x"}}],
    )

    result = run("kv", "txn", "-", input=body)

    assert result.exit_code == EXIT_CONFLICT
    assert json.loads(result.stdout) == {"ok": False, "failed": ["lock"]}
    assert "lock" in result.stderr
    store, storage = _storage(db)
    with store:
        assert storage.get("a") is None


def test_txn_reads_a_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "txn.json"
    path.write_text(_txn(operations=[{"op": "incr", "key": "n"}]))

    result = run("kv", "txn", str(path))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counters"] == {"n": 1}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "not JSON"),
        (_txn(operations=[{"op": "rename", "key": "a"}]), '"op" must be'),
        (_txn(operations=[{"op": "set", "key": "a"}]), "takes the fields"),
        (_txn(operations=[{"op": "set", "key": "a", "value": "x"}]), '"value" must be'),
        (_txn(checks=[{"key": "a"}]), "checks[0]"),
        (_txn(operations=[], extra=1), '"checks" and "operations"'),
    ],
)
def test_a_malformed_txn_is_a_usage_error_naming_the_part(
    run: Run, db: Path, body: str, says: str
) -> None:
    result = run("kv", "txn", "-", input=body)

    assert result.exit_code == 2
    assert says in result.stderr
    store, storage = _storage(db)
    with store:
        assert storage.changes().changes == []


def test_txn_refuses_a_bad_key_with_exit_3_and_changes_nothing(run: Run, db: Path) -> None:
    body = _txn(
        operations=[
            {"op": "set", "key": "ok", "value": {"text": "x"}},
            {"op": "set", "key": "", "value": {"text": "x"}},
        ]
    )

    result = run("kv", "txn", "-", input=body)

    assert result.exit_code == EXIT_ERROR
    store, storage = _storage(db)
    with store:
        assert storage.get("ok") is None


def test_set_keeps_metadata_and_content_type_that_meta_shows(run: Run) -> None:
    stored = run("kv", "set", "a", "{}", "--metadata", '{"by": "ü"}', "--content-type", "a/json")

    line, as_json = run("kv", "meta", "a"), run("kv", "meta", "a", "--json")

    assert stored.exit_code == 0, stored.output
    assert line.stdout.splitlines()[1:] == ["content_type: a/json", 'metadata: {"by": "ü"}']
    fields = json.loads(as_json.stdout)
    assert (fields["metadata"], fields["content_type"]) == ({"by": "ü"}, "a/json")


def test_meta_of_an_entry_without_metadata_prints_only_its_line(run: Run) -> None:
    run("kv", "set", "a", "v")

    assert run("kv", "meta", "a").stdout.count("\n") == 1
    fields = json.loads(run("kv", "meta", "a", "--json").stdout)
    assert (fields["metadata"], fields["content_type"]) == (None, None)


@pytest.mark.parametrize("metadata", ["[1]", "{bad", '"text"'])
def test_set_refuses_metadata_that_is_no_json_object(run: Run, metadata: str) -> None:
    result = run("kv", "set", "a", "v", "--metadata", metadata)

    assert result.exit_code == 2 and "--metadata" in result.stderr
    assert run("kv", "exist", "a").stdout == "false\n"


def test_set_refuses_a_malformed_content_type(run: Run) -> None:
    result = run("kv", "set", "a", "v", "--content-type", "not a type")

    assert result.exit_code == EXIT_ERROR and "content_type" in result.stderr
    assert run("kv", "exist", "a").stdout == "false\n"


def test_watch_since_prints_one_line_per_change(run: Run) -> None:
    run("kv", "set", "cfg/a", "1")
    run("kv", "set", "other", "1")
    run("kv", "delete", "cfg/a")

    result = run("kv", "watch", "cfg/", "--since", "0", "--count", "2")

    assert result.exit_code == 0, result.output
    assert result.stdout == "1 set cfg/a 1\n3 delete cfg/a 1\n"


def test_watch_json_prints_json_lines(run: Run) -> None:
    run("kv", "set", "a", "1")
    run("kv", "set", "a", "2")

    result = run("kv", "watch", "--since", "1", "--json", "--count", "1")

    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"seq": 2, "key": "a", "kind": "set", "version": 2}
    ]


def test_watch_past_the_last_change_is_refused(run: Run) -> None:
    result = run("kv", "watch", "--since", "99")

    assert result.exit_code == EXIT_ERROR and "since 99" in result.stderr


def test_watch_from_now_prints_what_is_committed_while_it_runs(db: Path) -> None:
    store, storage = _storage(db)
    storage.set("before", b"x")
    command = [sys.executable, "-m", "pluginkv", "kv", "watch", "--db", f"sqlite:///{db}"]
    command += ["--workspace", "ws-1", "--plugin", "acme/weather", "--count", "1"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    with store:
        # Keep writing until the watcher, once it has started, sees one write and exits.
        written = 0
        while watcher.poll() is None and written < 600:
            written += 1
            storage.set(f"k{written}", b"x")
            time.sleep(0.05)
    out, _ = watcher.communicate(timeout=30)
    assert watcher.returncode == 0
    seq, kind, key, _ = out.split()
    assert (kind, key[0]) == ("set", "k")
    assert int(seq) == int(key[1:]) + 1  # "before" was change 1: a write after the start


def test_ctrl_c_ends_a_watch_quietly_with_exit_0(db: Path) -> None:
    store, storage = _storage(db)
    with store:
        storage.set("a", b"1")
    command = [sys.executable, "-m", "pluginkv", "kv", "watch", "--db", f"sqlite:///{db}"]
    command += ["--workspace", "ws-1", "--plugin", "acme/weather", "--since", "0"]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    first = watcher.stdout.readline()  # printed: it is waiting for the next change now
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=30)
    assert (first, out, err, watcher.returncode) == ("1 set a 1\n", "", "", 0)
