"""A plugin's storage reads of a database server run off the event loop, as the HTTP API's do."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import pluginkv
from pluginkv import Store

from ..slow_server import SlowServer
from .conftest import PLUGIN_ENVS, PLUGIN_ID, HostService, Plugins


@pytest.mark.parametrize(
    ("transport", "op", "key", "read"),
    [
        pytest.param("tcp", "get", "k", "value", id="tcp-get"),
        pytest.param("stdio", "get", "k", "value", id="stdio-get"),
        # pluginkv.dify.storage(session): a set-if-absent that conflicts, then get_entry.
        # Only the remote-debug plugin can import pluginkv (conftest's PYTHONPATH).
        pytest.param("tcp", "cas", "lock", "version", id="tcp-get_entry"),
    ],
)
def test_a_plugins_read_waiting_on_the_database_stalls_nothing_else(
    tmp_path: Path, transport: str, plugins: Plugins, op: str, key: str, read: str
) -> None:
    """While one session's read hangs, /healthz and the plugin's other sessions are answered."""
    backend = SlowServer()
    store = Store(pluginkv.Settings(database_url="memory://"), backend=backend)
    service = HostService(tmp_path / "data", store=store, plugin_envs_dir=str(PLUGIN_ENVS))
    try:
        plugins.serve(service, transport, "ws-slow")
        assert "error" not in service.kv("ws-slow", "set", "k", "v")
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(service.kv, "ws-slow", op, key)
            while not backend.waiting.wait(0.05):
                assert not slow.done(), f"{op} never reached the database: {slow.result()}"
            # The read is now inside the database; on the event loop it would hold
            # up every request and every plugin channel of the service.
            assert service.call("GET", "/healthz", timeout=5)[0] == 200
            assert "error" not in service.kv("ws-slow", "set", "other", "x")
            backend.release.set()
            answer = slow.result()
        assert "error" not in answer and read in answer, answer
    finally:
        backend.release.set()
        service.stop()
    assert store.storage(workspace="ws-slow", plugin=PLUGIN_ID).get("other") == b"x"
