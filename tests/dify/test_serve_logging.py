"""``pluginkv serve``'s own output: its log level, the access log, and a quiet shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from ..server.test_serve import PLUGINKV, Service, free_port
from .fake_plugin import FakePlugin


def _debug_key(service: Service, workspace: str) -> str:
    data = ["--data-dir", str(service.data_dir), "--workspace", workspace]
    created = subprocess.run(
        [PLUGINKV, "debug-key", "create", *data], check=True, capture_output=True, text=True
    )
    return created.stdout.splitlines()[-1]


def test_shutdown_with_remote_plugins_connected_prints_no_traceback(tmp_path: Path) -> None:
    service = Service(tmp_path / "data")
    debug_port = free_port()
    service.extra_args = ["--debug-port", str(debug_port)]
    service.start()
    plugins = [FakePlugin(debug_port), FakePlugin(debug_port)]
    try:
        for number, plugin in enumerate(plugins):
            plugin.register(_debug_key(service, f"ws-{number}"))
            plugin.heartbeat()
        for number in range(len(plugins)):
            token = service.token("--admin")
            while f"ws-{number}" not in service.call("GET", "/v1/admin/plugins", token)[1].decode():
                pass
        code, output = service.stop(signal.SIGTERM)
        assert all(plugin.closed_by_host() for plugin in plugins)
    finally:
        for plugin in plugins:
            plugin.close()
    assert code in (0, -signal.SIGTERM)
    assert "unregistered <PluginConnection fake/plugin" in output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output and "Exception in callback" not in output


def test_shutdown_with_a_connection_mid_handshake_prints_no_traceback(tmp_path: Path) -> None:
    service = Service(tmp_path / "data")
    debug_port = free_port()
    service.extra_args = ["--debug-port", str(debug_port)]
    service.start()
    with socket.create_connection(("127.0.0.1", debug_port)) as waiting:
        waiting.sendall(b'{"key": "half a line')
        time.sleep(0.2)  # let the service read it and wait for the rest
        code, output = service.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output
    assert "Traceback" not in output and "CancelledError" not in output


def test_log_level_and_access_log_options(tmp_path: Path) -> None:
    service = Service(tmp_path / "data")
    service.extra_args = ["--log-level", "warning", "--access-log"]
    service.start()  # it polls /healthz until the service answers
    _, output = service.stop(signal.SIGTERM)
    assert '"GET /healthz HTTP/1.1" 200' in output
    assert "Application startup complete" not in output  # info, below the level
    quiet = Service(tmp_path / "data")
    quiet.start()
    _, output = quiet.stop(signal.SIGTERM)
    assert "GET /healthz" not in output  # no access log by default
    assert "Application startup complete" in output
