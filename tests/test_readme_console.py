"""The README's console blocks, pasted into a second terminal after ``make run``, print what
the README shows.

A block is a ```` ```console ```` fence: lines starting with ``$ `` are commands, the
lines up to the next command what it prints (stdout and stderr, as a terminal shows
them).  The blocks run in order in one bash, in a directory of their own where
``pluginkv serve`` runs and ``.venv`` is this checkout's.  In the expected output an ISO
8601 time stands for any time, and a line ``...`` for any lines.  The service listens
on a free port: ``127.0.0.1:8787`` in a command is rewritten to it.

The examples of ``docs/cli.md`` ("real runs", on a database file) run the same way,
without a service.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CLI_DOCS = ROOT / "docs" / "cli.md"
VENV = Path(sys.executable).parent.parent
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
_MARK = "\x1e-- next command --\x1e"


def _blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each console block as (command, expected lines) pairs."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        steps: list[tuple[str, list[str]]] = []
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command: {line!r}"
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def _matches(expected: list[str], actual: list[str]) -> bool:
    pattern = "\n".join(
        ".*" if line == "..." else ".*".join(map(re.escape, _TIME.split(line))) for line in expected
    )
    return re.fullmatch(pattern, "\n".join(actual), re.DOTALL) is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGINKV_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV / "bin"
    )
    return env


@pytest.fixture(name="terminal")
def _terminal(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], int, str]]:
    """A directory where ``pluginkv serve`` runs as ``make run`` starts it, and its port."""
    (tmp_path / ".venv").symlink_to(VENV)
    port, debug_port = _free_port(), _free_port()
    env = _clean_environment() | {"PLUGINKV_PORT": str(port)}
    server = subprocess.Popen(
        [str(VENV / "bin" / "pluginkv"), "serve", "--debug-port", str(debug_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                assert server.poll() is None, server.communicate()[0].decode()
                assert time.monotonic() < deadline, "pluginkv serve did not start"
                time.sleep(0.1)
        assert server.stdout is not None
        banner = ""
        while "a token for a plugin:" not in banner:
            banner = server.stdout.readline().decode()
            assert banner, "no banner"
        yield tmp_path, env, port, banner
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_every_readme_console_block_prints_what_the_readme_shows(
    terminal: tuple[Path, dict[str, str], int, str],
) -> None:
    directory, env, port, _ = terminal
    steps = [step for block in _blocks(README.read_text()) for step in block]
    assert len(steps) > 10
    # Only the service's port differs from a terminal: PLUGINKV_PORT stays for the
    # commands that find the service by it.
    replaced = [(c.replace("127.0.0.1:8787", f"127.0.0.1:{port}"), e) for c, e in steps]
    _run_and_compare(replaced, directory, env)


def test_the_cli_docs_examples_print_what_they_show(tmp_path: Path) -> None:
    text = CLI_DOCS.read_text()
    examples = text[text.index("## Examples") : text.index("## Scripting notes")]
    steps = [step for block in _blocks(examples) for step in block]
    assert len(steps) > 10
    env = _clean_environment()
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), env["PATH"]])
    _run_and_compare(steps, tmp_path, env)


def _run_and_compare(
    steps: list[tuple[str, list[str]]], directory: Path, env: dict[str, str]
) -> None:
    """Run the commands in one bash and compare what each printed with what is shown."""
    script = "exec 2>&1\n" + "".join(f"{command}\nprintf '\\n{_MARK}\\n'\n" for command, _ in steps)
    shell = subprocess.run(
        ["bash", "--norc", "--noprofile"],
        input=script,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = shell.stdout.split(f"\n{_MARK}\n")[: len(steps)]
    assert len(outputs) == len(steps), shell.stdout
    for (command, expected), output in zip(steps, outputs, strict=True):
        actual = output.strip("\n").splitlines()
        assert _matches(expected, actual), f"$ {command}\nexpected {expected}\nprinted  {actual}"


def test_the_serve_banner_suggests_a_command_that_works_where_make_run_started_it(
    terminal: tuple[Path, dict[str, str], int, str],
) -> None:
    directory, env, _, banner = terminal
    command = banner.split(":", 1)[1].strip()
    command = command.replace("WS", "ws-1").replace("AUTHOR/NAME", "acme/weather")
    shell = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", command],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, (command, shell.stderr)
    assert shell.stdout.count(".") == 2  # a JWT


def test_a_readme_time_or_ellipsis_stands_for_what_varies_and_nothing_else() -> None:
    assert _matches(["a\t2026-11-28T09:28:12Z"], ["a\t2031-01-02T03:04:05Z"])
    assert _matches(["first", "...", "last"], ["first", "x", "y", "last"])
    assert not _matches(["a\t2026-11-28T09:28:12Z"], ["b\t2031-01-02T03:04:05Z"])
    assert not _matches(["Berlin"], ["Paris"])
