"""The command line as a user runs it: a ``pluginkv`` process, against a live ``pluginkv serve``."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pluginkv import open_store as pluginkv_store

PLUGINKV = str(Path(sys.executable).parent / "pluginkv")
SCOPE = {"PLUGINKV_WORKSPACE": "ws-1", "PLUGINKV_PLUGIN": "acme/weather"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
    return env | extra


class Service:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = _environment(PLUGINKV_PORT=str(self.port), **SCOPE)
        self.process = subprocess.Popen(
            [PLUGINKV, "serve", "--debug-port", str(_free_port())],
            cwd=directory,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5).close()
                return
            except OSError:
                assert self.process.poll() is None, "pluginkv serve exited"
                assert time.monotonic() < deadline, "pluginkv serve did not start"
                time.sleep(0.1)

    def cli(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        input: str = "",
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PLUGINKV, *args],
            cwd=cwd or self.directory,
            env=self.env if env is None else env,
            capture_output=True,
            text=True,
            timeout=60,
            input=input,
        )

    def http_get(self, path: str, token: str) -> bytes:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body


@pytest.fixture(name="service", scope="module")
def _service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("service"))
    yield service
    service.process.terminate()
    service.process.wait(timeout=30)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_kv_writes_reach_the_running_service_that_plugins_read(service: Service) -> None:
    assert service.cli("kv", "set", "city", "Berlin").returncode == 0
    token = service.cli("token", "create", "--workspace", "ws-1", "--plugin", "acme/weather")
    assert service.http_get("/v1/kv/city", token.stdout.strip()) == b"Berlin"


def test_kv_takes_the_service_url_and_token_from_the_environment_anywhere(
    service: Service, tmp_path: Path
) -> None:
    token = service.cli("token", "create", "--workspace", "ws-1", "--plugin", "acme/weather")
    env = _environment(PLUGINKV_URL=service.url, PLUGINKV_TOKEN=token.stdout.strip(), **SCOPE)
    assert service.cli("kv", "set", "from-afar", "yes", cwd=tmp_path, env=env).returncode == 0
    assert service.cli("kv", "get", "from-afar").stdout == "yes"
    assert list(tmp_path.iterdir()) == []


def test_token_commands_elsewhere_refuse_instead_of_making_a_secret_or_a_store(
    service: Service, tmp_path: Path
) -> None:
    result = service.cli("token", "create", "--admin", cwd=tmp_path)
    assert result.returncode == 3
    assert "no token secret in" in _one_error_line(result)
    assert "--data-dir" in result.stderr
    assert list(tmp_path.iterdir()) == []
    revoked = service.cli("token", "revoke", "--workspace", "ws-1", "--plugin", "a/b", cwd=tmp_path)
    assert revoked.returncode == 3
    assert "no database at" in _one_error_line(revoked)
    assert list(tmp_path.iterdir()) == []


def test_a_db_that_does_not_exist_is_one_line_and_is_not_created(
    service: Service, tmp_path: Path
) -> None:
    for db in (str(tmp_path / "typo.db"), "/nonexistent/dir/x.db"):
        result = service.cli("kv", "get", "k", "--db", db)
        assert result.returncode == 3
        assert "no database at" in _one_error_line(result)
    exported = service.cli("export", "--db", str(tmp_path / "typo.db"), "-o", str(tmp_path / "o"))
    assert exported.returncode == 3
    assert list(tmp_path.iterdir()) == []


def test_init_creates_the_store_that_db_then_opens(service: Service, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'new.db'}"
    assert service.cli("init", "--db", db).stdout == f"created {db}\n"
    assert service.cli("kv", "set", "k", "v", "--db", db).returncode == 0
    assert service.cli("kv", "get", "k", "--db", db).stdout == "v"
    assert service.cli("init", "--db", db).stdout == f"{db} exists already\n"


def test_an_unreachable_service_exits_5_on_one_line(service: Service) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    for args in (("kv", "get", "k"), ("plugins",)):
        result = service.cli(*args, "--url", closed)
        assert result.returncode == 5, result.stderr
        assert "is pluginkv serve running?" in _one_error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ("kv", "get", "k", "--url", "foo"),
        ("plugins", "--url", "foo"),
        ("token", "create", "--admin", "--data-dir", "/proc/nope"),
    ],
    ids=["kv-url", "admin-url", "data-dir"],
)
def test_bad_locations_are_one_error_line(service: Service, args: tuple[str, ...]) -> None:
    result = service.cli(*args)
    assert result.returncode == 3
    _one_error_line(result)


def test_kv_incr_counts_and_delete_prefix_reports_how_many(service: Service) -> None:
    assert service.cli("kv", "incr", "hits").stdout == "1\n"
    assert service.cli("kv", "incr", "hits", "41").stdout == "42\n"
    assert service.cli("kv", "incr", "hits", "--", "-2").stdout == "40\n"
    for key in ("tmp/a", "tmp/b"):
        service.cli("kv", "set", key, "x")
    assert service.cli("kv", "delete", "--prefix", "tmp/").stdout == "2\n"
    refused = service.cli("kv", "delete", "--prefix", "")
    assert refused.returncode == 3 and "--all" in _one_error_line(refused)
    assert service.cli("kv", "delete", "k", "--prefix", "tmp/").returncode == 2


def test_kv_list_is_kv_keys_with_a_header_and_json_for_scripts(service: Service) -> None:
    service.cli("kv", "set", "list/one", "1")
    listed = service.cli("kv", "list", "list/")
    assert listed.stdout.splitlines()[0] == "KEY\tSIZE\tVERSION\tEXPIRES"
    assert listed.stdout == service.cli("kv", "keys", "list/").stdout
    (line,) = service.cli("kv", "keys", "list/", "--json").stdout.splitlines()
    assert json.loads(line)["key"] == "list/one"
    scopes = service.cli("scopes").stdout.splitlines()
    assert scopes[0] == "WORKSPACE\tPLUGIN\tKEYS\tBYTES_USED\tQUOTA_BYTES"
    assert any(line.startswith("ws-1\tacme/weather\t") for line in scopes[1:])


def test_set_many_stores_json_lines_that_get_many_prints_back(service: Service) -> None:
    lines = '{"key": "m/a", "value": "text"}\n{"key": "m/b", "base64": "/wA="}\n'
    stored = service.cli("kv", "set-many", input=lines)
    assert stored.returncode == 0, stored.stderr
    assert [json.loads(line)["key"] for line in stored.stdout.splitlines()] == ["m/a", "m/b"]
    printed = service.cli("kv", "get-many", "m/a", "m/b", "m/absent")
    assert printed.stdout == lines
    bad = service.cli("kv", "set-many", input='{"key": "m/c", "value": "x"}\n{"key": 1}\n')
    assert bad.returncode == 2 and "line 2" in bad.stderr
    assert service.cli("kv", "exist", "m/c").returncode == 1


def test_serve_with_the_debug_port_taken_says_so_on_one_line_before_listening(
    tmp_path: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [PLUGINKV, "serve", "--port", str(_free_port()), "--debug-port", str(port)],
            cwd=tmp_path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3
    assert "listening on" not in result.stdout
    line = _one_error_line(result)
    assert f"127.0.0.1:{port}" in line
    assert "--debug-port N" in line and "--debug-port off" in line


def test_serve_with_debug_port_off_serves_without_the_listener(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [PLUGINKV, "serve", "--port", str(port), "--debug-port", "off"],
        cwd=tmp_path,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    with server.stdout:
        try:
            banner = [server.stdout.readline() for _ in range(4)]
            assert "remote-debug Dify plugins: off (--debug-port off)\n" in banner
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                        break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_a_core_only_install_names_the_extra_on_one_line(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['jwt'] = None; from pluginkv.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "token", "create", "--admin"],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "pip install 'pluginkv[server]'" in _one_error_line(result)


def test_an_unreachable_postgresql_is_one_line_without_pool_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [PLUGINKV, "kv", "get", "k", "--db", f"postgresql://nobody@127.0.0.1:{_free_port()}/x"],
        cwd=tmp_path,
        env=_environment(PLUGINKV_POSTGRES_POOL_TIMEOUT_SECONDS="1", **SCOPE),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "PostgreSQL" in _one_error_line(result)


def test_version_prints_the_package_version() -> None:
    import pluginkv

    result = subprocess.run([PLUGINKV, "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"pluginkv, version {pluginkv.__version__}\n"


def _stderr_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run a command whose stderr is a terminal (a pty); its exit code and what it showed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        args, cwd=cwd, env=_environment(), stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    shown = b""
    try:
        while chunk := os.read(master, 65536):
            shown += chunk
    except OSError:  # EIO: the command exited and closed the terminal
        pass
    finally:
        os.close(master)
    return process.wait(timeout=60), shown


def test_export_and_import_show_progress_on_a_terminal_and_stay_quiet_when_piped(
    tmp_path: Path,
) -> None:
    db, copy, dump = tmp_path / "kv.db", tmp_path / "copy.db", tmp_path / "dump.jsonl"
    with pluginkv_store(f"sqlite:///{db}") as store:
        store.storage(workspace="ws-1", plugin="acme/weather").set_many(
            {f"k{n}": b"x" * 1000 for n in range(200)}
        )
    export = [PLUGINKV, "export", "--db", str(db), "-o", str(dump)]
    code, shown = _stderr_on_a_terminal(export, tmp_path)
    assert code == 0 and b"exporting" in shown
    code, shown = _stderr_on_a_terminal(
        [PLUGINKV, "import", str(dump), "--db", str(copy)], tmp_path
    )
    assert code == 0 and b"importing" in shown

    piped = subprocess.run(export, env=_environment(), capture_output=True, timeout=60)
    assert piped.stderr == b"exported 1 scopes, 200 keys, 200690 bytes\n"
    imported = subprocess.run(
        [PLUGINKV, "import", "-", "--db", str(tmp_path / "again.db")],
        input=dump.read_bytes(),
        env=_environment(),
        capture_output=True,
        timeout=60,
    )
    assert (imported.returncode, imported.stderr) == (0, b"")


def test_shell_completion_is_the_script_docs_cli_md_tells_to_eval() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert 'eval "$(_PLUGINKV_COMPLETE=bash_source pluginkv)"' in docs
    result = subprocess.run(
        [PLUGINKV],
        env=_environment(_PLUGINKV_COMPLETE="bash_source"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "complete -o nosort -F _pluginkv_completion pluginkv" in result.stdout
