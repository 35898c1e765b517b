"""Following changes over real sockets: event streams, and two services on one database.

Each test runs ``pluginkv serve`` processes (``test_serve.Service``); a change
made through one is seen by a watcher on another.  The only bound on time is a
generous timeout on each read.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pluginkv import Store

from .test_serve import Service

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
