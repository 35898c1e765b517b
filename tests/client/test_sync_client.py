"""What only the HTTP client has: retries, stale connections, outages, error mapping."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pluginkv import (
    BackendUnavailable,
    InvalidArgument,
    PluginKVError,
    QuotaExceeded,
    ReadOnly,
    ValueTooLarge,
)
from pluginkv.client import RemoteStorage

from ..conftest import LiveService


class Stub:
    """A tiny HTTP server answering from a script of (status, body) replies."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []
        self.requests: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests.append((self.command, self.path))
                status, body = stub.replies.pop(0) if stub.replies else (200, b"{}")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="stub")
def _stub() -> Iterator[Stub]:
    stub = Stub()
    yield stub
    stub.close()


def unavailable() -> tuple[int, bytes]:
    body = {"error": {"code": "backend_unavailable", "message": "database is locked"}}
    return 503, json.dumps(body).encode()


def read_only() -> tuple[int, bytes]:
    message = "the store is read-only (setting PLUGINKV_READ_ONLY=true)"
    return 503, json.dumps({"error": {"code": "read_only", "message": message}}).encode()


def test_safe_reads_are_retried_after_a_503(stub: Stub) -> None:
    stub.replies = [unavailable(), unavailable(), (200, b"value")]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        assert client.get("k") == b"value"
    assert len(stub.requests) == 3


def test_retries_give_up_with_the_service_error(stub: Stub) -> None:
    stub.replies = [unavailable()] * 5
    with RemoteStorage(stub.url, "t", retries=2) as client:
        with pytest.raises(BackendUnavailable, match="locked"):
            client.get("k")
    assert len(stub.requests) == 3  # the first try and two retries


def test_a_read_only_refusal_is_not_retried(stub: Stub) -> None:
    """A read-only 503 lasts until the operator ends it: even a safe write is sent once."""
    stub.replies = [read_only(), (204, b"")]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        with pytest.raises(ReadOnly, match="PLUGINKV_READ_ONLY"):
            client.set("k", b"v")
    assert len(stub.requests) == 1


def test_incr_is_never_repeated(stub: Stub) -> None:
    stub.replies = [unavailable(), (200, b'{"value": 1}')]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        with pytest.raises(BackendUnavailable):
            client.incr("n")
    assert len(stub.requests) == 1


def test_conditional_set_is_never_repeated(stub: Stub) -> None:
    stub.replies = [unavailable(), (204, b"")]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        with pytest.raises(BackendUnavailable):
            client.set("k", b"v", if_absent=True)
    assert len(stub.requests) == 1


def test_an_unreachable_service_is_unavailable_never_absent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens here
    with RemoteStorage(f"http://127.0.0.1:{port}", "t", retries=1) as client:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            client.get("k")
        with pytest.raises(BackendUnavailable):
            client.exist("k")


def test_a_404_that_is_not_an_absent_key_is_an_error(stub: Stub) -> None:
    body = {"error": {"code": "no_such_route", "message": "Not Found"}}
    stub.replies = [(404, json.dumps(body).encode())]
    with RemoteStorage(stub.url + "/wrong/prefix", "t") as client:
        with pytest.raises(PluginKVError, match="Not Found"):
            client.get("k")
    assert stub.requests[0][1].startswith("/wrong/prefix/v1/kv/")


def test_error_bodies_map_back_to_the_same_exception(stub: Stub) -> None:
    body = {
        "error": {
            "code": "quota_exceeded",
            "message": "quota exceeded (limit from setting PLUGINKV_DEFAULT_QUOTA_BYTES)",
            "used": 5,
            "limit": 10,
            "needed": 7,
        }
    }
    stub.replies = [(507, json.dumps(body).encode())]
    with RemoteStorage(stub.url, "t") as client:
        with pytest.raises(QuotaExceeded) as info:
            client.set("k", b"x" * 6)
    assert (info.value.used, info.value.limit, info.value.needed) == (5, 10, 7)


def test_a_non_json_error_is_still_an_error(stub: Stub) -> None:
    stub.replies = [(502, b"<html>bad gateway</html>")]
    with RemoteStorage(stub.url, "t", retries=0) as client:
        with pytest.raises(BackendUnavailable, match="502"):
            client.usage()


def test_keys_are_percent_encoded_whole(stub: Stub) -> None:
    stub.replies = [(204, b"")]
    with RemoteStorage(stub.url, "t") as client:
        client.set("a/./b?c#d%e f", b"v")
    assert stub.requests == [("PUT", "/v1/kv/a%2F.%2Fb%3Fc%23d%25e%20f")]


@pytest.mark.parametrize("url", ["ftp://host", "localhost:8787", "http://"])
def test_a_malformed_service_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        RemoteStorage(url, "t")


def test_a_connection_the_server_closed_while_idle_is_replaced(
    live_service: LiveService,
) -> None:
    token = live_service.tokens.issue(workspace="w", plugin="a/b")
    with RemoteStorage(live_service.url, token, retries=0) as client:
        client.set("k", b"v")
        conn = client._local.conn
        assert conn is not None and conn.sock is not None
        # What an idle timeout on the server does: close its end of the connection.
        conn.sock.shutdown(socket.SHUT_RDWR)
        assert client.incr("n") == 1  # not retried, so it must not hit the dead socket
        assert client.get("k") == b"v"


def test_one_client_serves_many_threads(live_service: LiveService) -> None:
    token = live_service.tokens.issue(workspace="w", plugin="a/threads")
    with RemoteStorage(live_service.url, token) as client:

        def work(n: int) -> None:
            for i in range(20):
                client.set(f"t{n}/{i}", str(i).encode())
                assert client.get(f"t{n}/{i}") == str(i).encode()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.usage().keys == 160


def test_a_head_on_a_wrong_url_prefix_is_an_error_not_absent(live_service: LiveService) -> None:
    token = live_service.tokens.issue(workspace="w", plugin="a/b")
    with RemoteStorage(live_service.url + "/wrong", token, retries=0) as client:
        with pytest.raises(PluginKVError):
            client.exist("k")
        with pytest.raises(PluginKVError):
            client.get_meta("k")


def test_a_redirect_is_an_error_not_a_value(stub: Stub) -> None:
    stub.replies = [(302, b"<a href='https://elsewhere'>moved</a>")]
    with RemoteStorage(stub.url, "t", retries=0) as client:
        with pytest.raises(PluginKVError, match="302"):
            client.get("k")


def test_a_reply_that_is_not_json_is_unavailable(stub: Stub) -> None:
    stub.replies = [(200, b"<html>captive portal</html>")]
    with RemoteStorage(stub.url, "t", retries=0) as client:
        with pytest.raises(BackendUnavailable, match="not JSON"):
            client.usage()


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        RemoteStorage("http://localhost:99999", "t")


def test_an_answer_given_before_the_body_was_sent_is_the_one_raised() -> None:
    """A service that answers 413 and closes mid-upload: ValueTooLarge, not a broken pipe."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_early() -> None:
        peer, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += peer.recv(65536)
        error = {"code": "value_too_large", "message": "over the limit", "size": 2, "limit": 1}
        body = json.dumps({"error": error}).encode()
        peer.sendall(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        peer.shutdown(socket.SHUT_WR)
        time.sleep(0.5)  # then close with the body unread: the client's send breaks
        peer.close()

    server = threading.Thread(target=answer_early)
    server.start()
    try:
        with RemoteStorage(f"http://127.0.0.1:{port}", "token", retries=0) as storage:
            with pytest.raises(ValueTooLarge, match="over the limit"):
                storage.set("big", b"x" * (64 * 1024 * 1024))
    finally:
        server.join()
        listener.close()
