"""``pluginkv serve`` as a real process: a socket, signals, and kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGINKV = str(Path(sys.executable).parent / "pluginkv")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                PLUGINKV,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                # A free port: another service on this machine may hold the default 5003.
                "--debug-port",
                str(free_port()),
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except OSError:
                assert self.process.poll() is None, self.process.stdout.read()  # type: ignore[union-attr]
                time.sleep(0.05)
        raise AssertionError("the service did not come up")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        output = self.process.stdout.read().decode(errors="replace")
        self.process.stdout.close()
        return code, output

    def token(self, *args: str) -> str:
        out = subprocess.run(
            [PLUGINKV, "token", "create", "--data-dir", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def call(
        self, method: str, path: str, token: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.url + path,
            data=body,
            method=method,
            # urllib would send a form's type, which a PUT stores as the content type.
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/octet-stream",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@pytest.fixture(name="service")
def _service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "data")
    service.start()
    yield service
    if service.process is not None and service.process.poll() is None:
        service.stop(signal.SIGKILL)


def test_serve_answers_over_a_real_socket_and_stops_cleanly_on_sigterm(service: Service) -> None:
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    assert service.call("PUT", "/v1/kv/city", token, b"Berlin")[0] == 204
    assert service.call("GET", "/v1/kv/city", token) == (200, b"Berlin")
    code, output = service.stop(signal.SIGTERM)
    # uvicorn finishes in-flight requests, runs the shutdown, then re-raises the signal.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in output
    assert not (service.data_dir / "pluginkv.db-wal").exists()  # closed cleanly, checkpointed


def test_token_secret_is_created_private(service: Service) -> None:
    secret = service.data_dir / "token-secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_read_only_and_admin_tokens_from_the_cli(service: Service) -> None:
    ro = service.token("--workspace", "ws-1", "--plugin", "acme/weather", "--read-only")
    assert service.call("PUT", "/v1/kv/k", ro, b"v")[0] == 403
    admin = service.token("--admin")
    status, body = service.call("GET", "/v1/admin/scopes", admin)
    assert status == 200 and b"scopes" in body


@pytest.mark.parametrize("how", ["setting", "flag"])
def test_restarted_read_only_it_serves_reads_refuses_writes_and_leaves_the_file(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    assert service.call("PUT", "/v1/kv/city", token, b"Berlin")[0] == 204
    service.stop()
    db = service.data_dir / "pluginkv.db"
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    if how == "setting":
        monkeypatch.setenv("PLUGINKV_READ_ONLY", "true")
    else:
        service.extra_args = [*service.extra_args, "--read-only"]
    service.start()
    assert service.call("GET", "/v1/kv/city", token) == (200, b"Berlin")
    status, body = service.call("PUT", "/v1/kv/city", token, b"Paris")
    assert status == 503 and b'"code":"read_only"' in body
    with urllib.request.urlopen(service.url + "/readyz", timeout=10) as ready:
        assert ready.status == 200
    _, output = service.stop()
    assert "read-only (PLUGINKV_READ_ONLY=true)" in output
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    wal = service.data_dir / "pluginkv.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--read-only"], "once without PLUGINKV_READ_ONLY"),
        (["--db", "postgresql://nobody@127.0.0.1:1/none"], "PostgreSQL"),
    ],
    ids=["read-only-and-never-migrated", "database-unreachable"],
)
def test_a_store_that_cannot_open_is_one_error_line_and_exit_3(
    tmp_path: Path, args: list[str], said: str
) -> None:
    done = subprocess.run(
        [PLUGINKV, "serve", "--data-dir", str(tmp_path), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PLUGINKV_POSTGRES_POOL_TIMEOUT_SECONDS": "0.5"},
    )
    assert done.returncode == 3, done.stdout + done.stderr
    # Before it, the connection pool may have logged each failed attempt.
    line = done.stderr.splitlines()[-1]
    assert line.startswith("error: ") and said in line, line
    assert "Traceback" not in done.stdout + done.stderr


def test_every_acknowledged_write_survives_kill_9_and_restart(service: Service) -> None:
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    acknowledged = {}
    for i in range(200):
        value = os.urandom(i % 50)
        if service.call("PUT", f"/v1/kv/k{i}", token, value)[0] == 204:
            acknowledged[f"k{i}"] = value
    service.stop(signal.SIGKILL)
    service.start()
    for key, value in acknowledged.items():
        assert service.call("GET", f"/v1/kv/{key}", token) == (200, value)
    status, body = service.call("GET", "/v1/usage", token)
    expected = sum(len(k) + len(v) for k, v in acknowledged.items())
    assert status == 200 and f'"bytes_used":{expected}'.encode() in body


def test_a_body_that_trickles_past_the_request_timeout_gets_408(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGINKV_REQUEST_TIMEOUT_SECONDS", "0.5")
    service = Service(tmp_path / "slow")
    service.start()
    try:
        token = service.token("--workspace", "w", "--plugin", "a/b")
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(
                b"PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                + f"Authorization: Bearer {token}\r\n\r\n".encode()
                + b"only ten b"
            )
            reply = b""
            while b"}}" not in reply:  # the headers and the JSON body may come apart
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408")
        assert b"PLUGINKV_REQUEST_TIMEOUT_SECONDS" in reply
    finally:
        service.stop(signal.SIGKILL)
