"""What a plugin's author sees: its log file, ``pluginkv plugin logs``, and why a start failed."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main

from ..server.test_serve import PLUGINKV
from .conftest import PLUGIN_ENVS, PLUGIN_ID, HostService
from .plugin_copies import INVALID_MAIN, example_copy

pytestmark = pytest.mark.usefixtures("sdk_python")

# Writes to stderr and sends a log event before the SDK starts serving.
CHATTY_MAIN = """\
import logging
import sys

from dify_plugin import DifyPluginEnv, Plugin
from dify_plugin.config.logger_format import plugin_logger_handler

print("a line on stderr", file=sys.stderr, flush=True)
logger = logging.getLogger("chatty")
logger.setLevel(logging.INFO)
logger.addHandler(plugin_logger_handler)
logger.warning("a log event")

plugin = Plugin(DifyPluginEnv(MAX_REQUEST_TIMEOUT=120))

if __name__ == "__main__":
    plugin.run()
"""


@pytest.fixture(name="host")
def _host(tmp_path: Path) -> Iterator[HostService]:
    service = HostService(tmp_path / "data", plugin_envs_dir=str(PLUGIN_ENVS))
    yield service
    service.stop()


def _options(service: HostService) -> list[str]:
    return ["--url", service.url, "--data-dir", str(service.data_dir)]


def test_what_a_plugin_prints_and_logs_goes_to_its_log_file(
    host: HostService, tmp_path: Path
) -> None:
    chatty = example_copy(tmp_path / "chatty", main=CHATTY_MAIN)
    pid = host.install("ws-l", chatty)["peer"]
    host.kv("ws-l", "print")
    text = (host.data_dir / "plugin-logs" / "pluginkv" / "storage_tool.log").read_text()
    for expected in (
        f"host: {pid} started: ",
        f"{pid} stderr: a line on stderr",
        f"{pid} log WARNING: a log event",
        f"host: {pid} is running, version 0.1.0",
        f"{pid} stdout: a line from plugin code, not JSON",
    ):
        assert expected in text, (expected, text)
    assert '"event"' not in text  # protocol messages stay out


def test_cli_prints_the_last_lines_of_the_log(host: HostService) -> None:
    pid = host.install("ws-l")["peer"]
    host.kv("ws-l", "print")
    result = CliRunner().invoke(main, ["plugin", "logs", PLUGIN_ID, *_options(host)])
    assert result.exit_code == 0, result.output
    assert f"{pid} stdout: a line from plugin code, not JSON\n" in result.stdout
    last = CliRunner().invoke(main, ["plugin", "logs", PLUGIN_ID, "-n", "1", *_options(host)])
    assert last.stdout.endswith(f"{pid} stdout: a line from plugin code, not JSON\n")
    assert last.stdout.count("\n") == 1


def test_a_log_read_on_from_its_cursor_gives_only_what_came_since(host: HostService) -> None:
    host.install("ws-l")
    status, answer = host.call("GET", f"/v1/admin/plugins/{PLUGIN_ID}/logs")
    assert status == 200
    first = json.loads(answer)
    assert first["plugin"] == PLUGIN_ID and first["more"] is False
    host.kv("ws-l", "print")
    status, answer = host.call(
        "GET", f"/v1/admin/plugins/{PLUGIN_ID}/logs?cursor={first['cursor']}"
    )
    later = json.loads(answer)
    (line,) = later["text"].splitlines()
    assert line.endswith("stdout: a line from plugin code, not JSON")


def test_follow_prints_lines_as_the_plugin_writes_them(host: HostService) -> None:
    host.install("ws-l")
    follow = subprocess.Popen(
        [PLUGINKV, "plugin", "logs", PLUGIN_ID, "--follow", *_options(host)],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follow.stdout or []), daemon=True)
    reader.start()
    try:
        host.wait_for(lambda: any(" is running, version " in line for line in seen), "the log")
        host.kv("ws-l", "print")
        host.wait_for(lambda: any("a line from plugin code" in line for line in seen), "new line")
    finally:
        follow.kill()
        follow.wait()
        reader.join(timeout=10)
        assert follow.stdout is not None
        follow.stdout.close()


def test_the_log_of_a_plugin_never_installed_is_404(host: HostService) -> None:
    status, answer = host.call("GET", "/v1/admin/plugins/nobody/nothing/logs")
    assert status == 404
    assert json.loads(answer)["error"]["code"] == "plugin_not_found"


def test_a_failed_start_shows_the_first_exception_and_is_listed(
    host: HostService, tmp_path: Path
) -> None:
    """The pydantic error that ended the process, not the noise gevent prints after it."""
    invalid = example_copy(tmp_path / "invalid", main=INVALID_MAIN)
    status, answer = host.call(
        "POST", "/v1/admin/plugins/install", {"directory": str(invalid), "workspace": "ws-l"}
    )
    assert status == 502
    message = json.loads(answer)["error"]["message"]
    assert message.startswith(
        f"{PLUGIN_ID} exited at start-up: pydantic_core._pydantic_core.ValidationError: "
        "1 validation error for DifyPluginEnv\nMAX_REQUEST_TIMEOUT\n  Input should be a valid "
        "integer"
    )
    assert "greenlet" not in message
    listed = CliRunner().invoke(main, ["plugins", *_options(host)])
    (line,) = listed.stdout.splitlines()
    fields: list[Any] = line.split("\t")
    assert fields[:4] == [PLUGIN_ID, "0.1.0", "stdio", "ws-l"]
    assert fields[6] == "failed"
    assert fields[7] == " ".join(message.split())
    logged = CliRunner().invoke(main, ["plugin", "logs", PLUGIN_ID, *_options(host)]).stdout
    assert "stderr: Traceback (most recent call last):" in logged  # the whole of it is there
    assert "host: could not start: " in logged
