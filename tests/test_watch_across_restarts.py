"""Watching outlives a restart of the service: a real ``pluginkv serve`` is stopped and started
again on the same data directory while ``kv watch`` and both clients' ``watch()`` follow it.

Each watcher must see every change exactly once: the one made before the stop, one made
while the service was down (straight into its database, as another process would), and
one made after the restart.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import pluginkv
from pluginkv import Change
from pluginkv.client import AsyncRemoteStorage, RemoteStorage

PLUGINKV = str(Path(sys.executable).parent / "pluginkv")
SCOPE = {"workspace": "ws-1", "plugin": "acme/weather"}
EXPECTED = [(1, "set", "before"), (2, "set", "while-down"), (3, "set", "after")]


def _scope_options() -> list[str]:
    return ["--workspace", SCOPE["workspace"], "--plugin", SCOPE["plugin"]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """``pluginkv serve`` on one data directory and port, which can be stopped and started."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [PLUGINKV, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--debug-port", "off"],
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

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)

    def token(self) -> str:
        result = subprocess.run(
            [PLUGINKV, "token", "create", "--data-dir", str(self.data_dir), *_scope_options()],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip().splitlines()[-1]


@pytest.fixture(name="service")
def _service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "data")
    service.start()
    yield service
    if service.process is not None and service.process.poll() is None:
        service.stop()


def _seen(changes: list[Change]) -> list[tuple[int, str, str]]:
    return [(change.seq, change.kind, change.key) for change in changes]


def test_kv_watch_and_client_watches_see_each_change_once_across_a_restart(
    service: Service,
) -> None:
    token = service.token()
    with RemoteStorage(service.url, token) as writer:
        writer.set("before", b"1")

    # kv watch, whose client makes one attempt per request (retries=0).
    env = {**service.env, "PLUGINKV_URL": service.url, "PLUGINKV_TOKEN": token}
    cli = subprocess.Popen(
        [PLUGINKV, "kv", "watch", "--since", "0", "--count", "3", *_scope_options()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The sync client, in a thread, and the async client, on a loop in another.
    got: list[Change] = []
    got_async: list[Change] = []
    errors: list[BaseException] = []
    first = threading.Barrier(3)  # the two clients' watchers, and this thread

    def follow() -> None:
        try:
            with RemoteStorage(service.url, token, retries=0, timeout=4) as client:
                for change in client.watch(since=0):
                    got.append(change)
                    if len(got) == 1:
                        first.wait(timeout=60)
                    if len(got) == len(EXPECTED):
                        return
        except BaseException as exc:  # the test thread asserts on it
            errors.append(exc)
            first.abort()

    async def follow_async() -> None:
        async with AsyncRemoteStorage(service.url, token, retries=0, timeout=4) as client:
            async for change in client.watch(since=0):
                got_async.append(change)
                if len(got_async) == 1:
                    await asyncio.to_thread(first.wait, 60)
                if len(got_async) == len(EXPECTED):
                    return

    def run_async() -> None:
        try:
            asyncio.run(follow_async())
        except BaseException as exc:
            errors.append(exc)
            first.abort()

    # Daemons: a watcher that never gets its changes must not keep the test run alive.
    threads = [
        threading.Thread(target=follow, daemon=True),
        threading.Thread(target=run_async, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == "1 set before 1\n"  # kv watch has its first change
        first.wait(timeout=60)  # ... and so do both clients: all three are waiting for more

        service.stop()
        time.sleep(1.0)  # every watcher finds the service gone, and keeps trying
        with pluginkv.open_store(f"sqlite:///{service.data_dir / 'pluginkv.db'}") as store:
            store.storage(**SCOPE).set("while-down", b"2")
        service.start()
        with RemoteStorage(service.url, token) as writer:
            writer.set("after", b"3")

        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert (cli.returncode, out) == (0, "2 set while-down 2\n3 set after 3\n"), err
    lost, found = err.splitlines()  # kv watch says so while it waits for the service
    assert lost.startswith(f"watching {service.url}: ") and lost.endswith(
        "; reconnecting until it answers"
    )
    assert found.startswith(f"watching {service.url}: reconnected after ")
    assert _seen(got) == _seen(got_async) == EXPECTED
