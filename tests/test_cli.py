"""The ``pluginkv`` command line, driven through click's runner and once through a real pipe."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import pluginkv
from pluginkv import Store
from pluginkv.cli import EXIT_CONFLICT, EXIT_ERROR, EXIT_FALSE, main

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _no_pluginkv_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings of the developer's shell must not leak into the tests."""
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
    """Run ``pluginkv <command...> --db --workspace --plugin <args...>``.

    ``run("kv", "set", "k", "v")`` puts the scope options right after the
    command; ``workspace``/``plugin``/``env``/``input`` keywords adjust the call.
    """
    runner = CliRunner()

    def run(
        *argv: str,
        workspace: str = "ws-1",
        plugin: str = "acme/weather",
        input: Any = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        depth = 2 if argv[0] == "kv" else 1
        scope = ["--db", f"sqlite:///{db}", "--workspace", workspace, "--plugin", plugin]
        args = [*argv[:depth], *scope, *argv[depth:]]
        return runner.invoke(main, args, input=input, env=env, prog_name="pluginkv")

    return run


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# -- set and get ---------------------------------------------------------------------
def test_get_writes_raw_bytes_to_stdout(run: Run) -> None:
    data = b"\x00\xff\xfe binary\r\n\x00"
    assert run("kv", "set", "blob", "-", input=data).exit_code == 0

    result = run("kv", "get", "blob")

    assert result.exit_code == 0
    assert result.stdout_bytes == data  # exactly: no newline added
    assert result.stderr == ""


@pytest.mark.parametrize("value_argument", [[], ["-"]], ids=["absent", "dash"])
def test_set_reads_value_from_stdin(run: Run, value_argument: list[str]) -> None:
    result = run("kv", "set", "k", *value_argument, input=b"from stdin\n")

    assert result.exit_code == 0, result.output
    assert run("kv", "get", "k").stdout_bytes == b"from stdin\n"


def test_set_reads_value_from_file(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "value.bin"
    source.write_bytes(bytes(range(256)))

    assert run("kv", "set", "k", "--file", str(source)).exit_code == 0

    assert run("kv", "get", "k").stdout_bytes == bytes(range(256))


def test_set_encodes_value_argument_as_utf8(run: Run) -> None:
    assert run("kv", "set", "city", "Zürich").exit_code == 0

    assert run("kv", "get", "city").stdout_bytes == "Zürich".encode()


def test_set_with_value_and_file_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "value.bin"
    source.write_bytes(b"x")

    result = run("kv", "set", "k", "v", "--file", str(source))

    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_set_without_value_on_a_terminal_is_a_usage_error(run: Run) -> None:
    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    result = run("kv", "set", "k", input=Terminal(b"typed"))

    assert result.exit_code == 2
    assert "no value" in result.stderr


def test_get_of_absent_key_exits_1(run: Run) -> None:
    result = run("kv", "get", "x")

    assert result.exit_code == EXIT_FALSE == 1
    assert result.stderr == "key 'x' not found\n"
    assert result.stdout_bytes == b""


def test_set_with_ttl_lists_its_expiry_in_utc(run: Run) -> None:
    before = time.time()
    assert run("kv", "set", "session", "abc", "--ttl", "3600").exit_code == 0

    _header, line = run("kv", "keys").stdout.splitlines()
    key, size, version, expiry = line.split("\t")

    assert (key, size, version) == ("session", "10", "1")
    assert expiry.endswith("Z")
    assert before + 3599 <= datetime.fromisoformat(expiry).timestamp() <= time.time() + 3600


# -- conditions, delete, exist -------------------------------------------------------------
def test_if_absent_refuses_to_overwrite_with_exit_4(run: Run) -> None:
    assert run("kv", "set", "lock", "me", "--if-absent").exit_code == 0

    result = run("kv", "set", "lock", "you", "--if-absent")

    assert result.exit_code == EXIT_CONFLICT == 4
    assert "already holds a value" in _one_error_line(result)
    assert run("kv", "get", "lock").stdout_bytes == b"me"


def test_if_version_guards_set_and_delete(run: Run) -> None:
    run("kv", "set", "k", "v1")  # version 1

    assert run("kv", "set", "k", "v2", "--if-version", "7").exit_code == EXIT_CONFLICT
    assert run("kv", "set", "k", "v2", "--if-version", "1").exit_code == 0  # now version 2
    assert run("kv", "delete", "k", "--if-version", "1").exit_code == EXIT_CONFLICT
    assert run("kv", "delete", "k", "--if-version", "2").exit_code == 0
    assert run("kv", "exist", "k").stdout == "false\n"


def test_delete_is_silent_also_for_an_absent_key(run: Run) -> None:
    run("kv", "set", "k", "v")

    for _ in range(2):
        result = run("kv", "delete", "k")
        assert (result.exit_code, result.output) == (0, "")
    assert run("kv", "get", "k").exit_code == EXIT_FALSE


def test_exist_prints_true_or_false_and_exits_0_or_1(run: Run) -> None:
    run("kv", "set", "here", "")  # an empty value is a value

    present, absent = run("kv", "exist", "here"), run("kv", "exist", "gone")

    assert (present.exit_code, present.stdout) == (0, "true\n")
    assert (absent.exit_code, absent.stdout) == (1, "false\n")


def test_meta_prints_a_keys_line_or_its_json_and_exits_1_when_absent(run: Run) -> None:
    _fill(run, "a")

    line, as_json, absent = (
        run("kv", "meta", "a"),
        run("kv", "meta", "a", "--json"),
        run("kv", "meta", "gone"),
    )

    assert (line.exit_code, line.stdout) == (0, "a\t2\t1\t-\n")
    fields = json.loads(as_json.stdout)
    assert (fields["key"], fields["size"], fields["version"], fields["expires_at"]) == (
        "a",
        2,
        1,
        None,
    )
    assert fields["created_at"] == fields["updated_at"] > 0
    assert (absent.exit_code, absent.stdout, absent.stderr) == (1, "", "key 'gone' not found\n")


def test_scopes_lists_each_plugin_in_each_workspace_with_its_usage(db: Path) -> None:
    with pluginkv.open_store(f"sqlite:///{db}", default_quota_bytes=1000) as store:
        store.storage(workspace="ws-2", plugin="acme/news").set("k", b"12345")
        store.storage(workspace="ws-1", plugin="acme/weather").set("city", b"Berlin")
        store.storage(workspace="ws-1", plugin="acme/weather").set("gone", b"x", ttl=0.001)
    time.sleep(0.01)  # let the TTL pass: expired keys are not counted
    runner = CliRunner()
    env = {"PLUGINKV_DEFAULT_QUOTA_BYTES": "1000"}
    every = runner.invoke(main, ["scopes", "--db", f"sqlite:///{db}"], env=env)
    one = runner.invoke(
        main, ["scopes", "--db", f"sqlite:///{db}", "--workspace", "ws-2", "--json"], env=env
    )

    assert (every.exit_code, every.stdout) == (
        0,
        "WORKSPACE\tPLUGIN\tKEYS\tBYTES_USED\tQUOTA_BYTES\n"
        "ws-1\tacme/weather\t1\t10\t1000\nws-2\tacme/news\t1\t6\t1000\n",
    )
    assert json.loads(one.stdout) == {
        "workspace": "ws-2",
        "plugin": "acme/news",
        "keys": 1,
        "bytes_used": 6,
        "quota_bytes": 1000,
    }


# -- errors --------------------------------------------------------------------------------
def test_invalid_key_prints_one_line_and_fails(run: Run) -> None:
    result = run("kv", "exist", "a..b")

    assert result.exit_code == EXIT_ERROR == 3
    assert _one_error_line(result) == "error: key 'a..b' contains '..', which keys may not\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("workspace", "plugin", "named"),
    [("bad id", "acme/weather", "workspace"), ("ws-1", "acme/weather@1.0", "plugin")],
)
def test_invalid_scope_fails_before_creating_a_database(
    run: Run, db: Path, workspace: str, plugin: str, named: str
) -> None:
    db.unlink()
    result = run("kv", "get", "k", workspace=workspace, plugin=plugin)

    assert result.exit_code == EXIT_ERROR
    assert _one_error_line(result).startswith(f"error: {named} ")
    assert not db.exists()


def test_quota_error_names_the_setting(run: Run) -> None:
    result = run("kv", "set", "k", "too long", env={"PLUGINKV_DEFAULT_QUOTA_BYTES": "5"})

    assert result.exit_code == EXIT_ERROR
    assert "quota exceeded" in _one_error_line(result)
    assert "PLUGINKV_DEFAULT_QUOTA_BYTES" in result.stderr


def test_multi_line_engine_error_is_shown_on_one_line(run: Run) -> None:
    result = run("usage", env={"PLUGINKV_DEFAULT_QUOTA_BYTES": "lots"})

    assert result.exit_code == EXIT_ERROR
    assert "default_quota_bytes" in _one_error_line(result)


def test_unsupported_database_url_is_an_error(run: Run) -> None:
    runner = CliRunner()
    args = ["kv", "get", "--db", "mysql://h/db", "--workspace", "w", "--plugin", "a/b", "k"]

    result = runner.invoke(main, args)

    assert result.exit_code == EXIT_ERROR
    assert "unsupported database URL scheme 'mysql'" in _one_error_line(result)
    assert "postgresql://" in _one_error_line(result)


def test_missing_workspace_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["kv", "get", "--plugin", "a/b", "k"])

    assert result.exit_code == 2
    assert "--workspace" in result.stderr


def test_store_is_closed_after_each_command_also_on_error(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Store] = []
    close = Store.close

    def spy(store: Store) -> None:
        closed.append(store)
        close(store)

    monkeypatch.setattr(Store, "close", spy)
    results = [run("kv", "set", "k", "v"), run("kv", "get", "nope"), run("kv", "get", "a..b")]

    assert [result.exit_code for result in results] == [0, EXIT_FALSE, EXIT_ERROR]
    assert len(closed) == 3


# -- keys ----------------------------------------------------------------------------------
def _fill(run: Run, *keys: str) -> None:
    for key in keys:
        assert run("kv", "set", key, "v").exit_code == 0


def test_keys_prints_tab_separated_lines(run: Run) -> None:
    _fill(run, "b", "a")

    result = run("kv", "keys")

    assert result.stdout == "KEY\tSIZE\tVERSION\tEXPIRES\na\t2\t2\t-\nb\t2\t1\t-\n"
    assert result.stderr == ""


def test_keys_pages_with_limit_and_cursor(run: Run) -> None:
    _fill(run, "k1", "k2", "k3", "k4", "k5")

    first = run("kv", "keys", "--limit", "2")
    cursor = first.stderr.removeprefix("next page: --cursor ").strip()
    second = run("kv", "keys", "--limit", "2", "--cursor", cursor)

    assert [line.split("\t")[0] for line in first.stdout.splitlines()] == ["KEY", "k1", "k2"]
    assert first.stderr.startswith("next page: --cursor ")
    assert [line.split("\t")[0] for line in second.stdout.splitlines()] == ["KEY", "k3", "k4"]


def test_keys_lists_all_pages_with_all(run: Run) -> None:
    keys = [f"item/{n:02}" for n in range(7)]
    _fill(run, *reversed(keys))

    result = run("kv", "keys", "--limit", "2", "--all")

    assert result.exit_code == 0
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["KEY", *keys]
    assert result.stderr == ""


def test_keys_lists_only_the_prefix(run: Run) -> None:
    _fill(run, "user/1", "user/2", "users", "zone")

    result = run("kv", "keys", "user/")

    assert [line.split("\t")[0] for line in result.stdout.splitlines()[1:]] == ["user/1", "user/2"]


# -- usage ---------------------------------------------------------------------------------
def test_usage_prints_raw_and_human_bytes(run: Run) -> None:
    run("kv", "set", "k", "x" * 1233)  # 1 + 1233 bytes

    result = run("usage", env={"PLUGINKV_DEFAULT_QUOTA_BYTES": str(5 * 1024 * 1024)})

    assert result.stdout == (
        "bytes_used: 1234 (1.2 KiB)\nkeys: 1\nquota_bytes: 5242880 (5.0 MiB)\n"
    )


def test_usage_prints_json(run: Run) -> None:
    run("kv", "set", "k", "vv")

    result = run("usage", "--json")

    assert json.loads(result.stdout) == {"bytes_used": 3, "keys": 1, "quota_bytes": 100 * 2**20}


# -- scopes and options --------------------------------------------------------------------
def test_workspaces_do_not_see_each_other(run: Run) -> None:
    run("kv", "set", "k", "one", workspace="ws-1")
    run("kv", "set", "other", "x", workspace="ws-2", plugin="acme/other")

    assert run("kv", "get", "k", workspace="ws-1").stdout_bytes == b"one"
    assert run("kv", "get", "k", workspace="ws-2").exit_code == EXIT_FALSE
    assert run("kv", "keys", "--json", workspace="ws-2").stdout == ""
    assert run("kv", "keys", "--json", workspace="ws-1").stdout.startswith('{"key": "k"')
    assert run("kv", "exist", "other", workspace="ws-2").exit_code == EXIT_FALSE


def test_scope_options_can_come_from_the_environment(db: Path) -> None:
    env = {
        "PLUGINKV_DATABASE_URL": str(db),  # a plain path works as well as a URL
        "PLUGINKV_WORKSPACE": "ws-env",
        "PLUGINKV_PLUGIN": "acme/env",
    }
    runner = CliRunner(env=env)

    assert runner.invoke(main, ["kv", "set", "k", "v"]).exit_code == 0

    with pluginkv.open_store(f"sqlite:///{db}") as store:
        assert store.storage(workspace="ws-env", plugin="acme/env").get("k") == b"v"


def test_version_option_prints_the_version() -> None:
    result = CliRunner().invoke(main, ["--version"], prog_name="pluginkv")

    assert result.stdout == f"pluginkv, version {pluginkv.__version__}\n"


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for path in [(), *_commands(main)]:
        command: click.Command = main
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        result = runner.invoke(main, [*path, "--help"], prog_name="pluginkv")
        assert result.exit_code == 0, path
        assert command.help, f"{path} has no help text"
        assert result.stdout.startswith(f"Usage: {' '.join(['pluginkv', *path])} ")
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"option {param.name} of {path} has no help text"


def test_docs_mention_every_command() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for path in _commands(main):
        assert f"pluginkv {' '.join(path)}" in text, path


# -- the installed script, through a real pipe ---------------------------------------------
def _script() -> str:
    beside = Path(sys.executable).parent / "pluginkv"
    found = str(beside) if beside.exists() else shutil.which("pluginkv")
    assert found, "the pluginkv script is not installed: run `make install`"
    return found


def test_binary_value_round_trips_through_a_pipe(db: Path) -> None:
    data = b"\x00\xff" + bytes(range(256)) + b"\n\r\n\x00"
    scope = ["--db", str(db), "--workspace", "ws-1", "--plugin", "acme/weather"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLUGINKV_")}

    stored = subprocess.run(
        [_script(), "kv", "set", *scope, "blob"], input=data, env=env, capture_output=True
    )
    read = subprocess.run([_script(), "kv", "get", *scope, "blob"], env=env, capture_output=True)

    assert (stored.returncode, stored.stderr) == (0, b"")
    assert (read.returncode, read.stderr) == (0, b"")
    assert read.stdout == data
