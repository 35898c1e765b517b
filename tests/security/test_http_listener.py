"""The HTTP listener of ``pluginkv serve`` under raw-socket attacks: no request can stall it.

Each test runs against a real ``pluginkv serve`` process with small limits: headers
larger than the limit, headers that never finish, connections that say nothing, more
connections than the limit, and uploads refused with 413 while still being sent.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pluginkv import ValueTooLarge
from pluginkv.client import RemoteStorage

PLUGINKV = str(Path(sys.executable).parent / "pluginkv")
MiB = 1024 * 1024
HEADER_TIMEOUT = 1.0  # PLUGINKV_HEADER_TIMEOUT_SECONDS of these services
MAX_CONNECTIONS = 4  # PLUGINKV_MAX_CONNECTIONS of the connection-limit service
GUARD = 20.0  # a socket timeout so that a broken listener fails the test, not hangs it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A ``pluginkv serve`` process on a free port, with some settings from the environment."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.printed = ""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
        self.process = subprocess.Popen(
            [
                PLUGINKV,
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
                "--debug-port",
                str(free_port()),
            ],
            env={**environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stop()
            try:
                with self.connect() as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if read_response(sock)[0] == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("the service did not come up")

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=GUARD)
        return sock

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def token(self) -> str:
        scope = ["--workspace", "ws", "--plugin", "acme/up"]
        out = subprocess.run(
            [PLUGINKV, "token", "create", "--data-dir", str(self.data_dir), *scope],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> str:
        """Stop the service (if still running); everything it printed."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        stdout = self.process.stdout
        assert stdout is not None
        if not stdout.closed:
            self.printed = stdout.read().decode(errors="replace")
            stdout.close()
        return self.printed


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from ``sock``: status, headers (lower-case names), body.

    What arrives after it is lost: for one response at a time."""
    return read_responses(sock, 1)[0]


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``count`` HTTP responses from ``sock``, one after the other."""
    responses = []
    data = b""
    for _ in range(count):
        status, headers, body, data = _next_response(sock, data)
        responses.append((status, headers, body))
    return responses


def _next_response(sock: socket.socket, data: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return int(status_line.split()[1]), headers, body[:length], body[length:]


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (what is left unread before that is skipped)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def error_code(body: bytes) -> str:
    code: str = json.loads(body)["error"]["code"]
    return code


@pytest.fixture(scope="module", name="service")
def _service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(
        tmp_path_factory.mktemp("listener") / "data",
        {
            "PLUGINKV_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "PLUGINKV_MAX_VALUE_BYTES": str(1 * MiB),
        },
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def send_header_of(sock: socket.socket, size: int) -> int:
    """Send a request whose one header is ``size`` bytes; return the bytes sent before failing."""
    sent = 0
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        block = b"a" * MiB
        while sent < size:
            sock.sendall(block)
            sent += len(block)
        sock.sendall(b"\r\n\r\n")
    except OSError:  # reset or broken pipe: the server closed the connection
        pass
    return sent


def test_a_128_mib_header_is_cut_off_early_and_never_buffered(service: Service) -> None:
    rss_before = service.rss_bytes()
    with service.connect() as sock:
        sent = send_header_of(sock, 128 * MiB)
        assert closed_by_peer(sock)
    assert sent < 128 * MiB
    assert service.rss_bytes() - rss_before < 16 * MiB


def test_a_32_mib_header_is_refused_with_431(service: Service) -> None:
    with service.connect() as sock:
        sender = threading.Thread(target=send_header_of, args=(sock, 32 * MiB))
        sender.start()
        status, headers, body = read_response(sock)
        sender.join()
    assert status == 431
    assert headers["connection"] == "close"
    assert error_code(body) == "headers_too_large"
    assert "PLUGINKV_MAX_HEADER_BYTES" in body.decode()


def test_headers_within_the_limit_are_served(service: Service) -> None:
    with service.connect() as sock:
        header = b"X-Big: " + b"a" * 60_000 + b"\r\n"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n")
        assert read_response(sock)[0] == 200
        # and the keep-alive connection's next request is counted afresh
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n")
        assert read_response(sock)[0] == 200


def test_pipelined_requests_and_requests_in_pieces_are_served(service: Service) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with service.connect() as sock:
        sock.sendall(request * 3)  # three in one read
        assert [status for status, _, _ in read_responses(sock, 3)] == [200, 200, 200]
        for piece in (request[:5], request[5:20], request[20:]):  # one in three reads
            sock.sendall(piece)
            time.sleep(0.05)
        assert read_response(sock)[0] == 200


def slowloris(sockets: list[socket.socket], request: bytes) -> dict[socket.socket, bytes]:
    """Send ``request`` a byte at a time (4 a second) on each socket; what each then got back."""
    got = {sock: b"" for sock in sockets}
    open_ = set(sockets)
    sel = selectors.DefaultSelector()
    for sock in sockets:
        sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + GUARD
    position = 0
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.25):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                chunk = ready.recv(65536)
            except ConnectionResetError:
                chunk = b""
            got[ready] += chunk
            if not chunk:
                sel.unregister(ready)
                open_.discard(ready)
        if position < len(request):
            for sock in list(open_):
                try:
                    sock.send(request[position : position + 1])
                except OSError:
                    sel.unregister(sock)
                    open_.discard(sock)
            position += 1
    sel.close()
    assert not open_, "a slow connection outlived the header timeout"
    assert position < len(request), "the whole request went out: the test proves nothing"
    return got


def test_slowloris_connections_are_answered_408_and_closed(service: Service) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    sockets = [service.connect() for _ in range(20)]
    try:
        got = slowloris(sockets, request)
        # the service still answers others meanwhile
        with service.connect() as other:
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(other)[0] == 200
    finally:
        for sock in sockets:
            sock.close()
    for answer in got.values():
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"PLUGINKV_HEADER_TIMEOUT_SECONDS" in answer


def test_a_slow_second_request_on_a_keep_alive_connection_is_answered_408(
    service: Service,
) -> None:
    with service.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
        got = slowloris([sock], b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200)
    assert got[sock].startswith(b"HTTP/1.1 408 ")


def test_silent_connections_are_closed_after_the_header_timeout(service: Service) -> None:
    sockets = [service.connect() for _ in range(20)]
    try:
        for sock in sockets:
            assert sock.recv(1) == b""  # EOF, no answer: the socket timeout would raise
    finally:
        for sock in sockets:
            sock.close()


# More than the body the service drops unread before it closes the connection (about
# a second's worth), and than it would drop in the test's patience.
ENDLESS = 16 * 1024 * MiB


def send_body(sock: socket.socket, chunked: bool, sent: list[int]) -> None:
    """Send up to ENDLESS bytes of body, adding up in ``sent[0]`` what went out."""
    block = b"x" * MiB
    frame = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    try:
        while sent[0] < ENDLESS:
            sock.sendall(frame)
            sent[0] += len(block)
    except OSError:  # reset or broken pipe: the server closed the connection
        pass


def test_an_upload_refused_with_413_closes_the_connection(service: Service) -> None:
    token = service.token()
    for framing in (b"Transfer-Encoding: chunked", f"Content-Length: {ENDLESS}".encode()):
        with service.connect() as sock:
            sock.sendall(
                b"PUT /v1/kv/big HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                + token.encode()
                + b"\r\n"
                + framing
                + b"\r\n\r\n"
            )
            sent = [0]
            chunked = framing.startswith(b"Transfer")
            sender = threading.Thread(target=send_body, args=(sock, chunked, sent))
            sender.start()
            status, _, body = read_response(sock)
            assert closed_by_peer(sock)
            sender.join()
        assert status == 413
        assert error_code(body) == "value_too_large"
        assert sent[0] < ENDLESS


@pytest.mark.parametrize("size", [8 * MiB, 200 * MiB], ids=["8 MiB", "200 MiB"])
def test_the_client_sdk_gets_value_too_large_for_an_upload_answered_early(
    service: Service, size: int
) -> None:
    # http.client sends the whole body before it reads: the 413 must still reach it,
    # even when the service closed before the body was all sent (200 MiB), and the
    # next call goes out on a new connection.
    with RemoteStorage(f"http://127.0.0.1:{service.port}", service.token()) as storage:
        with pytest.raises(ValueTooLarge):
            storage.set("big", b"x" * size)
        storage.set("small", b"fits")
        assert storage.get("small") == b"fits"


@pytest.fixture(name="small_service")
def _small_service(tmp_path: Path) -> Iterator[Service]:
    service = Service(
        tmp_path / "data",
        {
            "PLUGINKV_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "PLUGINKV_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        },
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def test_connections_past_the_limit_are_answered_503_and_closed(small_service: Service) -> None:
    # Keep-alive connections with a request behind them: the header timeout does not
    # close them, the idle timeout (30 s) would.
    held: list[socket.socket] = []
    try:
        for _ in range(100):  # the readiness probe's connections may take a moment to go
            if len(held) == MAX_CONNECTIONS:
                break
            sock = small_service.connect()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            if read_response(sock)[0] == 200:
                held.append(sock)
            else:
                sock.close()
                time.sleep(0.05)
        assert len(held) == MAX_CONNECTIONS
        with small_service.connect() as extra:
            status, headers, body = read_response(extra)
            assert closed_by_peer(extra)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert error_code(body) == "too_many_connections"
        assert "PLUGINKV_MAX_CONNECTIONS" in body.decode()
        for sock in held:  # the ones within the limit are still served
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock)[0] == 200
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, a new connection is served again.
    for _ in range(100):
        with small_service.connect() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            if read_response(sock)[0] == 200:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("closed connections still count against the limit")
    assert "PLUGINKV_MAX_CONNECTIONS" in small_service.stop()  # the operator is told


def test_serve_raises_a_low_open_file_limit_to_fit_the_connection_limit(tmp_path: Path) -> None:
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 4096))

    service = Service(
        tmp_path / "data", {"PLUGINKV_MAX_CONNECTIONS": "1000"}, preexec_fn=low_soft_limit
    )
    try:
        service.wait_ready()
        limits = Path(f"/proc/{service.process.pid}/limits").read_text()
    finally:
        service.stop()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["1256", "4096"]


def test_serve_refuses_a_connection_limit_the_open_file_limit_cannot_hold(
    tmp_path: Path,
) -> None:
    def low_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    service = Service(
        tmp_path / "data", {"PLUGINKV_MAX_CONNECTIONS": "1000"}, preexec_fn=low_file_limit
    )
    code = service.process.wait(timeout=30)
    output = service.stop()
    assert code == 3
    assert "PLUGINKV_MAX_CONNECTIONS=1000" in output
    assert "Traceback" not in output
