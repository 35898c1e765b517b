"""Commits, the change feed and metadata through the clients and the CLI, against the live
service: what the contract suites (which run on the ``remote`` backends too) cannot see.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pluginkv import (
    BackendUnavailable,
    ChangesExpired,
    CommitResult,
    InvalidArgument,
    Store,
    Unauthorized,
    ValueTooLarge,
)
from pluginkv.cli import EXIT_CONFLICT, main
from pluginkv.client import AsyncRemoteStorage, RemoteStorage
from pluginkv.client._wire import Retryable
from pluginkv.client.errors import ServiceUnreachable
from pluginkv.keys import Scope

from ..conftest import LiveService

SCOPE = {"workspace": "ws-1", "plugin": "acme/weather"}


def _service(
    open_store: Callable[..., Store], live_service: LiveService, **settings: Any
) -> tuple[Store, str]:
    """A memory store (the engine's, to compare with) behind the live service, and a token
    of SCOPE on it."""
    store = open_store("memory", **settings)
    live_service.app.state.store = store  # as the "remote" backend does (conftest.RemoteStore)
    return store, live_service.tokens.issue(**SCOPE)


@pytest.mark.parametrize(
    ("settings", "build", "error", "setting"),
    [
        (
            {"max_commit_operations": 2},
            lambda c: c.set("a", b"1").delete("b").incr("n"),
            InvalidArgument,
            "PLUGINKV_MAX_COMMIT_OPERATIONS",
        ),
        (
            {"max_commit_bytes": 10},
            lambda c: c.set("a", b"x" * 4).set("b", b"x" * 4).set("c", b"x"),
            InvalidArgument,
            "PLUGINKV_MAX_COMMIT_BYTES",
        ),
        (
            {"max_value_bytes": 4},
            lambda c: c.set("a", b"1").set("b", b"12345"),
            ValueTooLarge,
            "PLUGINKV_MAX_VALUE_BYTES",
        ),
    ],
)
def test_the_services_limits_refuse_the_whole_commit_and_name_the_setting(
    open_store: Callable[..., Store],
    live_service: LiveService,
    settings: dict[str, int],
    build: Callable[[Any], Any],
    error: type[Exception],
    setting: str,
) -> None:
    store, token = _service(open_store, live_service, **settings)
    with RemoteStorage(live_service.url, token) as client:
        with pytest.raises(error, match=setting):
            build(client.atomic()).commit()
    assert store.storage(**SCOPE).changes().changes == []


def test_metadata_goes_both_ways_with_any_text_and_counts_as_in_process(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    metadata = {"owner": "Zoë", "tags": ["ü", "日本"], "n": 1.5}
    with RemoteStorage(live_service.url, token) as client:
        version = client.set("k", b"v", metadata=metadata, content_type="text/plain; q=1")
        entry = client.get_entry("k")
        (listed,) = client.keys().entries
    local = store.storage(**SCOPE).get_entry("k")
    assert entry is not None and local is not None
    assert (entry.metadata, entry.content_type, entry.version) == (
        metadata,
        "text/plain; q=1",
        version,
    )
    assert (local.metadata, local.content_type) == (metadata, "text/plain; q=1")
    assert (listed.metadata, listed.content_type) == (metadata, "text/plain; q=1")
    assert entry.size == listed.size == local.size


def test_get_meta_counts_the_size_as_in_process(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    with RemoteStorage(live_service.url, token) as client:
        client.set("k", b"v", metadata={"owner": "u1"}, content_type="text/plain")
        meta = client.get_meta("k")
    local = store.storage(**SCOPE).get_meta("k")
    assert meta is not None and local is not None
    assert (meta.size, meta.metadata, meta.content_type) == (
        local.size,
        {"owner": "u1"},
        "text/plain",
    )


def test_a_long_poll_with_nothing_new_answers_an_empty_page_at_since(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    _, token = _service(open_store, live_service)
    with RemoteStorage(live_service.url, token) as client:
        client.set("a", b"1")
        page = client.changes(since=1, wait=0.2)
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_CHANGES_WAIT_SECONDS"):
            client.changes(since=1, wait=10_000)
    assert (page.changes, page.next) == ([], 1)


def test_a_watch_waits_across_polls_shorter_than_the_read_timeout(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    # timeout=0.4: each poll waits 0.2 s, so several come back empty before the write.
    with RemoteStorage(live_service.url, token, timeout=0.4) as client:
        watching = client.watch("cfg/")
        writer = threading.Timer(1.0, store.storage(**SCOPE).set, ("cfg/a", b"1"))
        writer.start()
        change = next(watching)
        writer.join()
    assert (change.seq, change.kind, change.key) == (1, "set", "cfg/a")


def test_a_watch_asks_for_less_when_the_service_allows_a_shorter_wait(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    storage = store.storage(**SCOPE)

    async def follow_async() -> str:
        async with AsyncRemoteStorage(live_service.url, token) as client:
            watching = client.watch(since=1)  # after "a"
            writer = threading.Timer(0.5, storage.set, ("b", b"1"))
            writer.start()
            change = await anext(watching)
            writer.join()
            return change.key

    settings = live_service.app.state.settings
    live_service.app.state.settings = settings.model_copy(update={"max_changes_wait_seconds": 1})
    try:
        with RemoteStorage(live_service.url, token) as client:  # each asks for 20 s at first
            with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_CHANGES_WAIT_SECONDS"):
                client.changes(wait=2)
            watching = client.watch()
            writer = threading.Timer(0.5, storage.set, ("a", b"1"))
            writer.start()
            first = next(watching)
            writer.join()
        second = asyncio.run(follow_async())
    finally:
        live_service.app.state.settings = settings
    assert (first.key, second) == ("a", "b")


def test_the_async_watch_starts_when_iteration_begins(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service, changes_retention_count=1)
    storage = store.storage(**SCOPE)

    async def main() -> tuple[list[str], BaseException | None]:
        async with AsyncRemoteStorage(live_service.url, token) as client:
            with pytest.raises(InvalidArgument):
                client.watch(page_size=0)  # bad arguments raise when called
            expired = client.watch(since=0)  # ...but what needs the service, when iterated
            watching = client.watch()
            storage.set("before", b"x")  # committed before the first step: not seen
            first = asyncio.ensure_future(anext(watching))
            await asyncio.sleep(0.3)  # let the watch read its start and wait
            storage.set("after", b"x")
            seen = [(await first).key]
            try:
                await anext(expired)
            except ChangesExpired as exc:
                return seen, exc
            return seen, None

    storage.set("old1", b"x")
    storage.set("old2", b"x")
    store.sweep_expired()  # with a log of one change, change 1 is gone
    seen, raised = asyncio.run(main())
    assert seen == ["after"]
    assert isinstance(raised, ChangesExpired) and raised.oldest == 2


def test_the_async_client_commits_and_reads_a_failed_check_as_a_result(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)

    async def main() -> tuple[CommitResult, CommitResult]:
        async with AsyncRemoteStorage(live_service.url, token) as client:
            done = (
                await client.atomic()
                .check("lock", version=None)
                .set("a", b"\xff", metadata={"m": 1})
                .incr("n", 2)
                .commit()
            )
            lost = (
                await client.atomic().check("lock", version=None).check("a", version=None).commit()
            )
            return done, lost

    store.storage(**SCOPE)  # the scope exists before the first request
    done, lost = asyncio.run(main())
    assert done.ok and done.counters == {"n": 2} and set(done.versions) == {"a", "n"}
    assert lost == CommitResult(False, {}, ["a"])
    entry = store.storage(**SCOPE).get_entry("a")
    assert entry is not None and (entry.value, entry.metadata) == (b"\xff", {"m": 1})


# -- the CLI against the service -----------------------------------------------------------------
def _cli(live_service: LiveService, token: str) -> Callable[..., Result]:
    runner = CliRunner()

    def run(*argv: str, input: str | None = None) -> Result:
        target = ["--url", live_service.url, "--token", token]
        scope = ["--workspace", SCOPE["workspace"], "--plugin", SCOPE["plugin"]]
        return runner.invoke(main, [*argv[:2], *target, *scope, *argv[2:]], input=input)

    return run


def test_kv_txn_commits_through_the_service_and_exits_4_on_a_failed_check(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    run = _cli(live_service, token)
    body = {
        "checks": [{"key": "lock", "version": None}],
        "operations": [{"op": "set", "key": "lock", "value": {"text": "held"}}],
    }

    first = run("kv", "txn", "-", input=json.dumps(body))
    second = run("kv", "txn", "-", input=json.dumps(body))

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["ok"] is True
    assert second.exit_code == EXIT_CONFLICT
    assert json.loads(second.stdout) == {"ok": False, "failed": ["lock"]}
    assert store.storage(**SCOPE).changes().next == 1


def test_kv_watch_set_and_meta_through_the_service(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    _, token = _service(open_store, live_service)
    run = _cli(live_service, token)

    stored = run("kv", "set", "cfg/a", "1", "--metadata", '{"by": "u1"}', "--content-type", "a/b")
    run("kv", "set", "other", "1")
    run("kv", "delete", "cfg/a")
    watched = run("kv", "watch", "cfg/", "--since", "0", "--json", "--count", "2")
    shown = (
        run("kv", "set", "cfg/b", "2", "--content-type", "text/plain"),
        run("kv", "meta", "cfg/b"),
    )

    assert stored.exit_code == 0, stored.output
    assert [json.loads(line) for line in watched.stdout.splitlines()] == [
        {"seq": 1, "key": "cfg/a", "kind": "set", "version": 1},
        {"seq": 3, "key": "cfg/a", "kind": "delete", "version": 1},
    ]
    assert shown[1].stdout.splitlines()[1:] == ["content_type: text/plain"]


def test_kv_watch_from_now_through_the_service_prints_a_later_write(
    open_store: Callable[..., Store], live_service: LiveService
) -> None:
    store, token = _service(open_store, live_service)
    storage = store.storage(**SCOPE)
    storage.set("before", b"x")
    run = _cli(live_service, token)
    result: list[Result] = []
    watcher = threading.Thread(target=lambda: result.append(run("kv", "watch", "--count", "1")))
    watcher.start()
    written = 0
    while watcher.is_alive() and written < 600:  # until the watcher, once started, sees one
        written += 1
        storage.set(f"k{written}", b"x")
        time.sleep(0.05)
    watcher.join(timeout=30)
    seq, kind, key, _ = result[0].stdout.split()
    assert (kind, key[0]) == ("set", "k")
    assert int(seq) == int(key[1:]) + 1


# -- a watch across outages: it polls again while the service is away, and only then ---------
def _flaky(attempt: Callable[..., Any], failures: list[Exception]) -> Callable[..., Any]:
    """``attempt`` failing first with each of ``failures``, as a service restarting would."""

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return attempt(*args, **kwargs)

    async def flaky_async(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return await attempt(*args, **kwargs)

    return flaky_async if asyncio.iscoroutinefunction(attempt) else flaky


def _outage() -> list[Exception]:
    return [
        Retryable(ServiceUnreachable("connection refused")),
        Retryable(BackendUnavailable("restarting"), retry_after=None),
        Retryable(ServiceUnreachable("connection reset")),
    ]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_watch_polls_again_through_an_outage_and_resumes_after_its_last_change(
    open_store: Callable[..., Store],
    live_service: LiveService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    client_kind: str,
) -> None:
    store, token = _service(open_store, live_service)
    storage = store.storage(**SCOPE)
    monkeypatch.setattr("pluginkv.client._changes.backoff", lambda attempt, asked=None: 0.0)
    storage.set("a", b"1")
    failures = _outage()

    async def follow_async() -> list[int]:
        async with AsyncRemoteStorage(live_service.url, token, retries=0) as client:
            watching = client.watch(since=0)
            first = await anext(watching)
            monkeypatch.setattr(client, "_attempt", _flaky(client._attempt, failures))
            storage.set("b", b"2")
            return [first.seq, (await anext(watching)).seq]

    if client_kind == "async":
        seen = asyncio.run(follow_async())
    else:
        with RemoteStorage(live_service.url, token, retries=0) as client:
            watching = client.watch(since=0)
            first = next(watching)
            monkeypatch.setattr(client, "_attempt", _flaky(client._attempt, failures))
            storage.set("b", b"2")
            seen = [first.seq, next(watching).seq]
    assert (seen, failures) == ([1, 2], [])
    logged = [r.getMessage() for r in caplog.records if r.name == "pluginkv.client"]
    assert len(logged) == 2, logged  # the outage's start, and its end
    assert "connection refused; reconnecting until it answers" in logged[0]
    assert "reconnected after 3 failed attempt(s)" in logged[1]


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_watch_ends_with_unauthorized_once_its_token_is_revoked(
    open_store: Callable[..., Store], live_service: LiveService, client_kind: str
) -> None:
    scope = {"workspace": "ws-revoked", "plugin": "acme/watch"}
    store = open_store("memory")
    live_service.app.state.store = store
    token = live_service.tokens.issue(**scope)
    storage = store.storage(**scope)
    storage.set("a", b"1")

    def revoke() -> None:
        live_service.tokens.revoked(Scope(**scope), time.time() + 1)

    async def follow_async() -> None:
        async with AsyncRemoteStorage(live_service.url, token) as client:
            watching = client.watch(since=0)
            await anext(watching)
            revoke()
            await anext(watching)

    if client_kind == "async":
        with pytest.raises(Unauthorized):
            asyncio.run(follow_async())
        return
    with RemoteStorage(live_service.url, token) as client:
        watching = client.watch(since=0)
        next(watching)
        revoke()
        with pytest.raises(Unauthorized):
            next(watching)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_a_watch_that_falls_behind_the_log_ends_with_changes_expired(
    open_store: Callable[..., Store], live_service: LiveService, client_kind: str
) -> None:
    store, token = _service(open_store, live_service, changes_retention_count=1)
    storage = store.storage(**SCOPE)
    storage.set("a", b"1")

    def fall_behind() -> None:
        storage.set_many({"b": b"2", "c": b"3"})
        store.sweep_expired()  # the log keeps change 3 only: 2 is gone

    async def follow_async() -> None:
        async with AsyncRemoteStorage(live_service.url, token) as client:
            watching = client.watch(since=0, page_size=1)
            await anext(watching)
            fall_behind()
            await anext(watching)

    if client_kind == "async":
        with pytest.raises(ChangesExpired):
            asyncio.run(follow_async())
        return
    with RemoteStorage(live_service.url, token) as client:
        watching = client.watch(since=0, page_size=1)
        next(watching)
        fall_behind()
        with pytest.raises(ChangesExpired):
            next(watching)
