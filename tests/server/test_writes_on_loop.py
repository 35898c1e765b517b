"""A write that finds the writer idle and no other request in flight commits where it was asked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from pluginkv import Store, VersionConflict
from pluginkv.config import Settings
from pluginkv.server.app import create_app
from pluginkv.server.listener_limits import ListenerLimits, limited_protocol
from pluginkv.services.tokens import Tokens
from pluginkv.services.write_groups import WriteQueue


@pytest.fixture(name="writer")
def _writer() -> Iterator[WriteQueue]:
    queue = WriteQueue(max_group=128, on_loop_max=1.0)
    yield queue
    queue.shutdown()


def thread_of(
    queue: WriteQueue, store: Store, call: Callable[[], Any] | None = None, *, quick: bool = True
) -> str:
    """The name of the thread that ran a write of ``store`` given to ``queue``."""
    ran_on: list[str] = []
    storage = store.storage(workspace="ws", plugin="acme/app")

    def write() -> Any:
        ran_on.append(threading.current_thread().name)
        return (call or (lambda: storage.set("k", b"v")))()

    asyncio.run(queue.run(store.backend, write, quick=quick))
    return ran_on[0]


def test_a_lone_write_with_the_writer_idle_commits_on_the_calling_thread(
    writer: WriteQueue, store: Store
) -> None:
    writer.alone = lambda: True

    assert thread_of(writer, store) == threading.current_thread().name
    assert store.storage(workspace="ws", plugin="acme/app").get("k") == b"v"


def test_a_write_beside_another_request_goes_to_the_writer_thread(
    writer: WriteQueue, store: Store
) -> None:
    writer.alone = lambda: False

    assert thread_of(writer, store) == "pluginkv-writer"


def test_a_write_not_marked_quick_always_goes_to_the_writer_thread(
    writer: WriteQueue, store: Store
) -> None:
    writer.alone = lambda: True

    assert thread_of(writer, store, quick=False) == "pluginkv-writer"


def test_without_the_listener_every_write_goes_to_the_writer_thread(
    writer: WriteQueue, store: Store
) -> None:
    assert writer.alone is None
    assert thread_of(writer, store) == "pluginkv-writer"


def test_no_write_commits_on_the_loop_when_the_setting_is_zero(store: Store) -> None:
    queue = WriteQueue(max_group=128, on_loop_max=0.0)
    queue.alone = lambda: True
    try:
        assert thread_of(queue, store) == "pluginkv-writer"
    finally:
        queue.shutdown()


def test_writes_leave_the_loop_once_commits_take_longer_than_the_setting(store: Store) -> None:
    queue = WriteQueue(max_group=128, on_loop_max=0.01)
    queue.alone = lambda: True
    storage = store.storage(workspace="ws", plugin="acme/app")

    def slow_write() -> int:
        time.sleep(0.2)  # a slow disk's commit: the running average passes 0.01 s at once
        return storage.set("k", b"slow")

    try:
        assert thread_of(queue, store, slow_write) == threading.current_thread().name
        assert thread_of(queue, store) == "pluginkv-writer"
    finally:
        queue.shutdown()


def test_a_write_waits_for_a_busy_writer_instead_of_committing_beside_it(
    writer: WriteQueue, store: Store
) -> None:
    writer.alone = lambda: True
    release = threading.Event()
    ran_on: list[str] = []

    async def main() -> None:
        writer.alone = lambda: False  # the first write goes to the thread and holds it
        held = asyncio.ensure_future(writer.run(store.backend, lambda: release.wait(10)))
        await asyncio.sleep(0.05)
        writer.alone = lambda: True
        second = asyncio.ensure_future(
            writer.run(
                store.backend, lambda: ran_on.append(threading.current_thread().name), quick=True
            )
        )
        await asyncio.sleep(0.05)
        assert ran_on == []  # queued behind the held write, not run here
        release.set()
        await asyncio.gather(held, second)

    asyncio.run(main())
    assert ran_on == ["pluginkv-writer"]


def test_a_failed_write_on_the_loop_raises_its_own_error_and_changes_nothing(
    writer: WriteQueue, store: Store
) -> None:
    writer.alone = lambda: True
    storage = store.storage(workspace="ws", plugin="acme/app")
    storage.set("k", b"first")

    with pytest.raises(VersionConflict):
        thread_of(writer, store, lambda: storage.set("k", b"second", if_version=999))

    assert storage.get("k") == b"first"


def test_a_write_after_shutdown_is_refused_on_the_loop_too(store: Store) -> None:
    queue = WriteQueue(max_group=128, on_loop_max=1.0)
    queue.alone = lambda: True
    queue.shutdown()

    with pytest.raises(RuntimeError, match="shut down"):
        thread_of(queue, store)


def test_the_served_app_asks_the_listener_whether_a_request_is_alone(
    store: Store, tokens: Tokens
) -> None:
    app = create_app(store=store, tokens=tokens)
    asked: list[bool] = []

    def alone() -> bool:
        asked.append(True)
        return True

    app.state.alone = alone  # what pluginkv serve sets: the listener's answer
    token = tokens.issue(workspace="ws", plugin="acme/app")
    with TestClient(app) as client:
        response = client.put(
            "/v1/kv/k", content=b"v", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.status_code == 204
    assert asked == [True]  # a small PUT asks; a large one would not
    with TestClient(app) as client:
        response = client.put(
            "/v1/kv/big",
            content=b"v" * (64 * 1024 + 1),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 204
    assert asked == [True]
    assert store.storage(workspace="ws", plugin="acme/app").get("k") == b"v"


def test_the_listener_says_alone_only_while_it_answers_one_request() -> None:
    protocol = limited_protocol(ListenerLimits.from_settings(Settings()))
    assert not protocol.alone()  # none yet
    protocol.requests = {object()}  # uvicorn's set of request tasks, taken at a connection
    assert protocol.alone()
    protocol.requests = {object(), object()}
    assert not protocol.alone()
