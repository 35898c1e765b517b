"""``pluginkv export`` and ``pluginkv import``, through click's runner and once through a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import pluginkv
from pluginkv import Store
from pluginkv.cli import EXIT_ERROR, main

from .test_cli import _script


@pytest.fixture(autouse=True)
def _no_pluginkv_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PLUGINKV_"):
            monkeypatch.delenv(name)


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, prog_name="pluginkv")


@pytest.fixture(name="source")
def _source(tmp_path: Path) -> str:
    """A SQLite store with two scopes, one of them with a binary value and a TTL."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    with pluginkv.open_store(url) as store:
        weather = store.storage(workspace="ws-1", plugin="acme/weather")
        weather.set("city", b"Berlin")
        weather.set("blob", b"\x00\xff\n", ttl=3600)
        store.storage(workspace="ws-2", plugin="acme/news").set("k", b"v")
    return url


def test_export_to_a_file_then_import_it_elsewhere(source: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    target = f"sqlite:///{tmp_path / 'target.db'}"

    exported = run("export", "--db", source, "-o", str(dump))
    imported = run("import", str(dump), "--db", target)

    assert (exported.exit_code, exported.stderr) == (0, "exported 2 scopes, 3 keys, 19 bytes\n")
    assert exported.stdout == ""
    assert not dump.with_name("dump.jsonl.partial").exists()
    assert (imported.exit_code, imported.stdout) == (0, "imported 2 scopes, 3 keys, 19 bytes\n")
    got = run(
        "kv", "get", "--db", target, "--workspace", "ws-1", "--plugin", "acme/weather", "blob"
    )
    assert got.stdout_bytes == b"\x00\xff\n"


def test_export_writes_to_stdout_and_import_reads_stdin(source: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"

    exported = run("export", "--db", source, "--workspace", "ws-2")
    imported = run("import", "-", "--db", target, input=exported.stdout_bytes)

    assert [json.loads(line)["type"] for line in exported.stdout.splitlines()] == [
        "header",
        "scope",
        "entry",
        "end",
    ]
    assert (imported.exit_code, imported.stdout) == (0, "imported 1 scopes, 1 keys, 2 bytes\n")


def test_import_refuses_existing_keys_unless_replace(source: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    run("export", "--db", source, "-o", str(dump))
    with pluginkv.open_store(source) as store:
        store.storage(workspace="ws-1", plugin="acme/weather").set("city", b"Paris")
        store.storage(workspace="ws-2", plugin="acme/news").delete("k")

    # 'blob' is as exported: only 'city', set again since, is in the way.
    refused = run("import", str(dump), "--db", source)
    replaced = run("import", str(dump), "--db", source, "--replace")

    assert refused.exit_code == EXIT_ERROR
    assert refused.stdout == "imported 1 scopes, 1 keys, 2 bytes\n"  # ws-2 had no such key
    assert refused.stderr == (
        "error: key 'city' (line 4) already exists in acme/weather in workspace ws-1 "
        "(version 3); the scope was not imported and is unchanged "
        "(--replace replaces existing keys)\n"
    )
    assert (replaced.exit_code, replaced.stderr) == (0, "")
    with pluginkv.open_store(source) as store:
        assert store.storage(workspace="ws-1", plugin="acme/weather").get("city") == b"Berlin"


def test_malformed_file_exits_3_naming_the_line(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(
        b'{"type": "header", "format": "pluginkv-export", "format_version": 1}\n{oops\n'
    )

    result = run("import", str(dump), "--db", f"sqlite:///{tmp_path / 'target.db'}")

    assert result.exit_code == EXIT_ERROR
    assert result.stdout == "imported 0 scopes, 0 keys, 0 bytes\n"
    assert result.stderr.startswith("error: line 2: not JSON")


def test_plugin_without_workspace_is_a_usage_error(source: str) -> None:
    result = run("export", "--db", source, "--plugin", "acme/weather")

    assert result.exit_code == 2
    assert "--plugin needs --workspace" in result.output


@pytest.mark.postgres
def test_sqlite_store_moves_to_postgres_through_a_pipe(
    source: str, open_store: Callable[..., Store], postgres_url: str
) -> None:
    target = open_store("postgres", clock=time.time)  # empties the test database first
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLUGINKV_")}

    exporter = subprocess.Popen(
        [_script(), "export", "--db", source], stdout=subprocess.PIPE, env=env
    )
    imported = subprocess.run(
        [_script(), "import", "-", "--db", postgres_url],
        stdin=exporter.stdout,
        capture_output=True,
        env=env,
        check=False,
    )
    assert exporter.stdout is not None
    exporter.stdout.close()

    assert (exporter.wait(), imported.returncode) == (0, 0), imported.stderr
    assert imported.stdout == b"imported 2 scopes, 3 keys, 19 bytes\n"
    with pluginkv.open_store(source) as store:
        assert target.scopes() == store.scopes()
