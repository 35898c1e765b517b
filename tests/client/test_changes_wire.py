"""What the clients decide on their own for commits and the change feed: what is retried,
what a 412 from /v1/atomic means, what is refused before anything is sent.

The behaviour against the real service is in test_changes_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from pluginkv import (
    BackendUnavailable,
    CommitResult,
    InvalidArgument,
    InvalidKey,
    InvalidValueType,
    PluginKVError,
)
from pluginkv.client import AsyncRemoteStorage, RemoteStorage

from .test_sync_client import Stub, unavailable


@pytest.fixture(name="stub")
def _stub() -> Iterator[Stub]:
    stub = Stub()
    yield stub
    stub.close()


def _check_failed(*keys: str) -> tuple[int, bytes]:
    error = {"code": "check_failed", "message": f"checks failed: {keys}", "failed": list(keys)}
    return 412, json.dumps({"error": error}).encode()


def test_an_atomic_commit_is_sent_once_even_after_a_503(stub: Stub) -> None:
    stub.replies = [unavailable(), (200, b'{"ok":true,"versions":{"a":1},"counters":{}}')]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        with pytest.raises(BackendUnavailable):
            client.atomic().set("a", b"x").commit()
    assert stub.requests == [("POST", "/v1/atomic")]


def test_a_failed_check_is_a_result_naming_the_keys_not_an_error(stub: Stub) -> None:
    stub.replies = [_check_failed("a", "lock")]
    with RemoteStorage(stub.url, "t") as client:
        result = client.atomic().check("a", version=3).check("lock", version=None).commit()
    assert result == CommitResult(False, {}, ["a", "lock"], {})


def test_a_412_without_the_failed_keys_stays_an_error(stub: Stub) -> None:
    body = {"error": {"code": "version_conflict", "message": "version mismatch"}}
    stub.replies = [(412, json.dumps(body).encode())]
    with RemoteStorage(stub.url, "t") as client:
        with pytest.raises(PluginKVError, match="version mismatch"):
            client.atomic().set("a", b"x").commit()


def test_a_commit_sends_the_operations_in_order_and_reads_the_result(stub: Stub) -> None:
    answer = {"ok": True, "versions": {"a": 4, "n": 7}, "counters": {"n": 12}}
    stub.replies = [(200, json.dumps(answer).encode())]
    with RemoteStorage(stub.url, "t") as client:
        result = (
            client.atomic()
            .check("a", version=3)
            .set("a", b"x", ttl=60, metadata={"by": "u1"}, content_type="text/plain")
            .set("b", b"\xff")
            .delete("b")
            .incr("n", 5)
            .commit()
        )
    assert result == CommitResult(True, {"a": 4, "n": 7}, [], {"n": 12})


def test_a_page_of_changes_is_retried_after_a_503(stub: Stub) -> None:
    page = {"changes": [{"seq": 5, "key": "cfg/a", "kind": "set", "version": 2}], "next": 5}
    stub.replies = [unavailable(), (200, json.dumps(page).encode())]
    with RemoteStorage(stub.url, "t", retries=3) as client:
        found = client.changes("cfg/", since=4, limit=10, wait=1.5)
    assert [(c.seq, c.key, c.kind, c.version) for c in found] == [(5, "cfg/a", "set", 2)]
    assert found.next == 5
    assert stub.requests[-1] == ("GET", "/v1/changes?prefix=cfg%2F&since=4&limit=10&wait=1.5")


def test_an_empty_commit_sends_nothing(stub: Stub) -> None:
    with RemoteStorage(stub.url, "t") as client:
        assert client.atomic().commit() == CommitResult(True, {}, [])
    assert stub.requests == []


def test_a_commit_is_spent_once_committed(stub: Stub) -> None:
    with RemoteStorage(stub.url, "t") as client:
        commit = client.atomic()
        commit.commit()
        with pytest.raises(InvalidArgument, match="committed already"):
            commit.set("a", b"x")


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda c: c.check("", version=1), InvalidKey),
        (lambda c: c.check("a", version=0), InvalidArgument),
        (lambda c: c.set("a", "text"), InvalidValueType),
        (lambda c: c.set("a", b"x", metadata=[1]), InvalidArgument),
        (lambda c: c.set("a", b"x", content_type="not a type"), InvalidArgument),
        (lambda c: c.incr("a", 2**63), InvalidArgument),
        (lambda c: c.set("a", b"x", ttl=-1), InvalidArgument),
    ],
)
def test_bad_operations_are_refused_before_anything_is_sent(
    stub: Stub, build: object, error: type[Exception]
) -> None:
    with RemoteStorage(stub.url, "t") as client:
        with pytest.raises(error):
            build(client.atomic())  # type: ignore[operator]
    assert stub.requests == []


@pytest.mark.parametrize(
    "kwargs", [{"since": -1}, {"since": "3"}, {"limit": 0}, {"wait": -1}, {"wait": float("nan")}]
)
def test_bad_change_arguments_are_refused_before_anything_is_sent(
    stub: Stub, kwargs: dict[str, object]
) -> None:
    with RemoteStorage(stub.url, "t") as client:
        with pytest.raises(InvalidArgument):
            client.changes(**kwargs)  # type: ignore[arg-type]
    assert stub.requests == []


def test_the_async_client_sends_a_commit_once_and_reads_a_412_as_a_result(stub: Stub) -> None:
    stub.replies = [unavailable(), _check_failed("a")]

    async def main() -> tuple[BaseException | None, CommitResult]:
        async with AsyncRemoteStorage(stub.url, "t", retries=3) as client:
            try:
                await client.atomic().set("a", b"x").commit()
            except BackendUnavailable as exc:
                first: BaseException | None = exc
            else:
                first = None
            return first, await client.atomic().check("a", version=None).commit()

    first, result = asyncio.run(main())
    assert isinstance(first, BackendUnavailable)
    assert result == CommitResult(False, {}, ["a"])
    assert stub.requests == [("POST", "/v1/atomic")] * 2
