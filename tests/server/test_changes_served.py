"""Following changes over real sockets: event streams, and two services on one database.

Each test runs ``pluginkv serve`` processes (``test_serve.Service``); a change
made through one is seen by a watcher on another.  The only bound on time is a
generous timeout on each read.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import pluginkv
from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.services.tokens import Tokens

from .test_serve import Service, free_port

TIMEOUT = 30.0  # seconds any one read may take before the test fails


@pytest.fixture(name="start")
def _start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Service]]:
    """Start ``pluginkv serve`` on a data directory, with extra arguments; all stopped after."""
    # A keep-alive comment often, and idle and header timeouts shorter than a test's
    # stream: the stream must outlive them.
    monkeypatch.setenv("PLUGINKV_CHANGES_KEEPALIVE_SECONDS", "0.2")
    monkeypatch.setenv("PLUGINKV_IDLE_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("PLUGINKV_HEADER_TIMEOUT_SECONDS", "1")
    started: list[Service] = []

    def start(data_dir: Path, *args: str) -> Service:
        service = Service(data_dir)
        service.extra_args = list(args)
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGKILL)


def _put(service: Service, token: str, key: str, value: bytes) -> None:
    status, body = service.call("PUT", f"/v1/kv/{key}", token, value)
    assert status == 204, body


class _Events:
    """An open event stream: its events, and the comments between them, as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.comments = 0

    def next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        for line in self.lines:
            if line.startswith(":"):
                self.comments += 1
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif fields:
                return {"id": fields["id"], "event": fields["event"], **json.loads(fields["data"])}
        raise AssertionError("the stream ended")

    def wait_for_comments(self, count: int) -> None:
        for line in self.lines:
            if line.startswith(":"):
                self.comments += 1
                if self.comments >= count:
                    return
            elif line:
                raise AssertionError(f"an event where none was due: {line}")
        raise AssertionError("the stream ended")


def _stream(
    service: Service, token: str, *, since: int | None = None, last_event_id: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {} if since is None else {"since": since}
    return httpx.stream(
        "GET",
        service.url + "/v1/changes",
        params=params,
        headers=headers,
        timeout=httpx.Timeout(TIMEOUT),
    )


def test_an_event_stream_sends_each_change_and_outlives_the_idle_timeout(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    service = start(tmp_path / "data")
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    with _stream(service, token) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _Events(response)
        _put(service, token, "cfg/a", b"1")
        first = events.next_event()
        assert (first["event"], first["key"], first["kind"]) == ("set", "cfg/a", "set")
        assert first["id"] == str(first["seq"])
        # Keep-alives past the 1 s idle and header timeouts: the stream stays open.
        events.wait_for_comments(10)
        service.call("DELETE", "/v1/kv/cfg/a", token)
        second = events.next_event()
        assert (second["kind"], second["seq"]) == ("delete", first["seq"] + 1)


def test_a_stream_resumes_after_its_last_event_id(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    service = start(tmp_path / "data")
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    for key in ("a", "b", "c"):
        _put(service, token, key, b"1")
    with _stream(service, token, since=0, last_event_id="1") as response:
        events = _Events(response)
        assert [events.next_event()["key"] for _ in range(2)] == ["b", "c"]


def _watch_one_write_through_the_other(first: Service, second: Service, token: str) -> None:
    """A long poll and an event stream on ``second`` see a write through ``first``."""
    status, body = second.call("GET", "/v1/changes", token)
    since = json.loads(body)["next"]
    polled: list[tuple[int, bytes]] = []
    poll = threading.Thread(
        target=lambda: polled.append(
            second.call("GET", f"/v1/changes?since={since}&wait={TIMEOUT}", token)
        )
    )
    with _stream(second, token, since=since) as response:
        events = _Events(response)
        poll.start()
        _put(first, token, "shared", b"1")
        event = events.next_event()
        assert (event["key"], event["seq"]) == ("shared", since + 1)
    poll.join(timeout=TIMEOUT * 2)
    assert not poll.is_alive()
    ((status, body),) = polled
    assert status == 200
    assert [c["key"] for c in json.loads(body)["changes"]] == ["shared"]


def test_a_watcher_on_one_service_sees_a_write_through_another_on_one_sqlite_file(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    first = start(tmp_path / "data")
    second = start(tmp_path / "data")
    token = first.token("--workspace", "ws-1", "--plugin", "acme/weather")
    _watch_one_write_through_the_other(first, second, token)
    _watch_one_write_through_the_other(second, first, token)


@pytest.mark.postgres
def test_a_watcher_on_one_service_sees_a_write_through_another_on_postgresql(
    start: Callable[..., Service],
    tmp_path: Path,
    open_store: Callable[..., Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store("postgres")  # the test run's database, emptied
    url = store.settings.database_url
    # One secret for both, as replicas share it; each has a data directory of its own.
    monkeypatch.setenv("PLUGINKV_TOKEN_SECRET", "replicas-" + "s" * 40)
    first = start(tmp_path / "one", "--db", url)
    second = start(tmp_path / "two", "--db", url)
    token = first.token("--workspace", "ws-1", "--plugin", "acme/weather")
    _watch_one_write_through_the_other(first, second, token)
    _watch_one_write_through_the_other(second, first, token)


def test_stopping_the_service_ends_its_streams_and_long_polls(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    """Without waiting for uvicorn's graceful timeout (30 s): nothing they hold needs it."""
    service = start(tmp_path / "data")
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    polled: list[tuple[int, bytes] | Exception] = []

    def poll() -> None:
        try:
            polled.append(service.call("GET", "/v1/changes?since=0&wait=60", token))
        except OSError as exc:  # the connection cut: what a client sees of a stop
            polled.append(exc)

    poller = threading.Thread(target=poll)
    with _stream(service, token) as response:
        events = _Events(response)
        events.wait_for_comments(1)
        poller.start()
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert service.process.stdout is not None
        service.process.stdout.close()
        with pytest.raises((httpx.RemoteProtocolError, AssertionError)):
            events.wait_for_comments(10**9)  # the stream ends: cut, or closed
    poller.join(timeout=TIMEOUT)
    assert len(polled) == 1


def test_open_streams_count_toward_the_connection_limit(
    start: Callable[..., Service], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGINKV_MAX_CONNECTIONS", "2")
    service = start(tmp_path / "data")
    token = service.token("--workspace", "ws-1", "--plugin", "acme/weather")
    with _stream(service, token) as one, _stream(service, token) as two:
        # Kept: a line iterator dropped closes its response.
        streams = [_Events(one), _Events(two)]
        for events in streams:
            events.wait_for_comments(1)
        status, body = service.call("GET", "/v1/usage", token)
        assert status == 503
        assert b"PLUGINKV_MAX_CONNECTIONS" in body
    # The streams closed: room again, once the service has seen them go.
    deadline = time.monotonic() + TIMEOUT
    while service.call("GET", "/v1/usage", token)[0] != 200:
        assert time.monotonic() < deadline, "the closed streams still count"
        time.sleep(0.05)


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_watchers_that_go_away_leave_nothing_registered(tokens: Tokens) -> None:
    """Streams closed and long polls abandoned by their clients release their waiters."""
    store = pluginkv.open_store("memory://", changes_keepalive_seconds=0.1)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(store=store, tokens=tokens),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
        )
    )
    running = threading.Thread(target=server.run)
    running.start()
    try:
        _eventually(lambda: server.started, "the server did not start")
        url = f"http://127.0.0.1:{server.config.port}/v1/changes"
        headers = {"Authorization": f"Bearer {tokens.issue(workspace='ws-1', plugin='acme/w')}"}
        notifier = store.notifier
        with ExitStack() as stack:
            for _ in range(5):
                client = stack.enter_context(httpx.Client(timeout=TIMEOUT))
                stream = client.send(
                    client.build_request(
                        "GET", url, headers={**headers, "Accept": "text/event-stream"}
                    ),
                    stream=True,
                )
                stack.callback(stream.close)
            port = server.config.port
            request = (
                f"GET /v1/changes?since=0&wait=60 HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {headers['Authorization']}\r\n\r\n"
            ).encode()
            polls = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            for poll in polls:
                poll.sendall(request)
            _eventually(
                lambda: notifier.waiting() == 10,
                "not every watcher registered",
            )
            for poll in polls:
                poll.close()  # the long polls' clients go away mid-wait
        _eventually(lambda: notifier.waiting() == 0, "waiters left registered")
    finally:
        server.should_exit = True
        running.join(timeout=TIMEOUT)
        store.close()
