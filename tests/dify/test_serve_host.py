"""``pluginkv serve`` as a real process accepts remote-debug plugins on ``--debug-port``."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from ..server.test_serve import PLUGINKV, Service, free_port
from .fake_plugin import FakePlugin


def _pluginkv(*args: str) -> str:
    return subprocess.run(
        [PLUGINKV, *args], check=True, capture_output=True, text=True
    ).stdout.splitlines()[-1]


def test_serve_registers_a_plugin_with_a_key_from_debug_key_create(tmp_path: Path) -> None:
    service = Service(tmp_path / "data")
    debug_port = free_port()
    service.extra_args = ["--debug-port", str(debug_port)]
    service.start()
    try:
        data = ["--data-dir", str(service.data_dir)]
        key = _pluginkv("debug-key", "create", *data, "--workspace", "ws-1")
        with FakePlugin(debug_port) as plugin:
            plugin.register(key)
            plugin.heartbeat()
            listed = ""
            for _ in range(100):
                listed = _pluginkv("plugins", *data, "--url", service.url)
                if listed:
                    break
            assert listed.split("\t")[:4] == ["fake/plugin", "0.0.1", "tcp", "ws-1"]
        with FakePlugin(debug_port) as plugin:
            plugin.send({"type": "handshake", "data": {"key": key + "x"}})
            assert plugin.read_line() == b"handshake failed, invalid key\n"
    finally:
        _, output = service.stop(signal.SIGTERM)
    assert "registered <PluginConnection fake/plugin" in output
    assert "refused the remote plugin" in output
