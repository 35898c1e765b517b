"""A hypothesis state machine drives ``Storage`` and a plain-dict model side by side.

The model is the contract in its simplest form: a dict of key -> (value,
version, expires_at, metadata, content type) holding every stored row (an expired one until it is
reclaimed), a counter for versions, a clock moved by hand, a small quota,
and the change log each write must leave.  Any difference in what a call
returns or raises, or in the changes it logs, is a bug.

Expired rows are reclaimed, each an ``expire`` change, in key order (UTF-8
bytes) within one statement, where the engine's contract says
(docs/engine.md, "Following changes"): by the sweeper (run by a write once
``sweep_interval_seconds`` have passed since the last sweep), by a write
that needs their room (every expired row of the scope, before the write's
own changes), by a delete that reaches them, or by a write of their key
(the ``expire``, then the ``set``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pluginkv
from pluginkv import (
    CommitResult,
    QuotaExceeded,
    Storage,
    VersionConflict,
    WrongValueType,
)

from .conftest import FakeClock
from .postgres import reset_tables

QUOTA = 200
SWEEP_INTERVAL = 5.0
KEYS = st.sampled_from(["a", "b", "a/b", "a/c", "ab", "é", "zz/1"])
PREFIXES = st.sampled_from(["", "a", "a/", "z", "é", "q"])
VALUES = st.binary(max_size=60) | st.integers(-50, 50).map(lambda n: str(n).encode())
TTLS = st.none() | st.sampled_from([1.0, 2.5, 10.0])
METADATA = st.none() | st.dictionaries(
    st.sampled_from(["n", "é"]), st.integers(0, 99) | st.text(max_size=3), max_size=2
)
CONTENT_TYPES = st.none() | st.sampled_from(["text/plain", "application/json"])
# A check asks for the key's current version (or absence), for absence, or for a
# version it does not have: it holds, holds when the key is absent, or fails.
CHECKS = st.sampled_from(["current", "absent", "other"])
OPERATIONS = st.one_of(
    st.tuples(st.just("check"), KEYS, CHECKS),
    st.tuples(st.just("set"), KEYS, VALUES, TTLS, METADATA, CONTENT_TYPES),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("incr"), KEYS, st.integers(-5, 5)),
)

Kind = Literal["set", "delete", "expire"]


def _size(key: str, value: bytes, metadata: dict[str, Any] | None, content_type: str | None) -> int:
    """What an entry counts in the quota: key, value, metadata as compact JSON, content type."""
    size = len(key.encode()) + len(value) + len(content_type or "")
    if metadata is not None:
        text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
        size += len(text.encode())
    return size


@dataclass(frozen=True)
class Put:
    """What a write stores under a key."""

    value: bytes
    expires_at: float | None
    metadata: dict[str, Any] | None = None
    content_type: str | None = None

    def size(self, key: str) -> int:
        return _size(key, self.value, self.metadata, self.content_type)


@dataclass
class Item:
    value: bytes
    version: int
    created_at: float
    expires_at: float | None
    metadata: dict[str, Any] | None = None
    content_type: str | None = None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now

    def size(self, key: str) -> int:
        return _size(key, self.value, self.metadata, self.content_type)


@dataclass(frozen=True)
class Logged:
    seq: int
    key: str
    kind: Kind
    version: int
    at: float


def _key_order(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=str.encode)


def _is_integer(value: bytes) -> bool:
    digits = value.removeprefix(b"-")
    return digits.isdigit() and len(digits) <= 19


class StorageModel(RuleBasedStateMachine):
    url_template = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.dir = tempfile.TemporaryDirectory()
        self.url = self.url_template.format(dir=self.dir.name)
        self.store = self._open()
        self.storage = self._storage()
        self.items: dict[str, Item] = {}  # every stored row, expired ones included
        self.last_version = 0
        self.log: list[Logged] = []  # every change the scope should have logged
        self.seen = 0  # the last sequence number read back

    def _open(self) -> pluginkv.Store:
        self.next_sweep = self.clock.now + SWEEP_INTERVAL
        return pluginkv.open_store(
            self.url,
            clock=self.clock,
            default_quota_bytes=QUOTA,
            sweep_interval_seconds=SWEEP_INTERVAL,
        )

    def _storage(self) -> Storage:
        return self.store.storage(workspace="ws", plugin="acme/model")

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    # -- the model -------------------------------------------------------------
    def live(self) -> dict[str, Item]:
        now = self.clock.now
        return {k: i for k, i in self.items.items() if i.live(now)}

    def used(self) -> int:
        return sum(i.size(k) for k, i in self.live().items())

    def logs(self, key: str, kind: Kind, version: int) -> None:
        event(f"logged: {kind}")
        self.log.append(Logged(len(self.log) + 1, key, kind, version, self.clock.now))

    def remove(self, keys: Iterable[str]) -> None:
        """Remove the stored rows among ``keys`` in one statement: key order, each a
        ``delete``, or an ``expire`` if it had expired."""
        now = self.clock.now
        for key in _key_order(k for k in set(keys) if k in self.items):
            item = self.items.pop(key)
            self.logs(key, "delete" if item.live(now) else "expire", item.version)

    def reclaim_expired(self) -> None:
        now = self.clock.now
        self.remove([k for k, i in self.items.items() if not i.live(now)])

    def after_write(self) -> None:
        """What follows a committed write: the sweeper, once its interval has passed."""
        if self.clock.now >= self.next_sweep:
            self.sweep_model()

    def sweep_model(self) -> None:
        self.reclaim_expired()
        self.next_sweep = self.clock.now + SWEEP_INTERVAL

    def fits(self, final: dict[str, Put | None]) -> bool:
        """Whether a write leaving ``final`` (``None``: deleted) passes the quota; if it
        needs the room of expired rows, they are reclaimed first (as the write will)."""
        growth = sum(
            (0 if put is None else put.size(k)) - (self.items[k].size(k) if k in self.items else 0)
            for k, put in final.items()
        )
        if growth <= 0 or self.stored_bytes() + growth <= QUOTA:
            return True
        live = self.live()
        live_growth = sum(
            (0 if put is None else put.size(k)) - (live[k].size(k) if k in live else 0)
            for k, put in final.items()
        )
        if self.used() + live_growth > QUOTA:
            return False
        self.reclaim_expired()
        return True

    def stored_bytes(self) -> int:
        return sum(i.size(k) for k, i in self.items.items())

    def model_write(
        self,
        pairs: dict[str, bytes],
        ttl: float | None,
        keep: bool = False,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Apply a write to the model; False if the quota refuses it.  With ``keep``
        (``incr``) a live entry keeps its expiry, metadata and content type."""
        live = self.live()
        expires_at = None if ttl is None else self.clock.now + ttl
        puts = {}
        for key, value in pairs.items():
            old = live.get(key)
            if keep and old is not None:
                puts[key] = Put(value, old.expires_at, old.metadata, old.content_type)
            else:
                puts[key] = Put(value, expires_at, metadata, content_type)
        if not self.fits(dict(puts)):
            return False
        for key, put in puts.items():
            self.put(key, put)
        self.after_write()
        return True

    def put(self, key: str, put: Put) -> int:
        now = self.clock.now
        old = self.items.get(key)
        if old is not None and not old.live(now):
            self.logs(key, "expire", old.version)
            old = None
        self.last_version += 1
        created = old.created_at if old is not None else now
        self.items[key] = Item(
            put.value, self.last_version, created, put.expires_at, put.metadata, put.content_type
        )
        self.logs(key, "set", self.last_version)
        return self.last_version

    # -- rules -----------------------------------------------------------------
    @rule(key=KEYS, value=VALUES, ttl=TTLS, metadata=METADATA, content_type=CONTENT_TYPES)
    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None,
        metadata: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> None:
        extras: dict[str, Any] = {"metadata": metadata, "content_type": content_type}
        if self.model_write({key: value}, ttl, **extras):
            assert self.storage.set(key, value, ttl=ttl, **extras) == self.last_version
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set(key, value, ttl=ttl, **extras)

    @rule(key=KEYS, offset=st.sampled_from([-1, 0, 1]))
    def fill_to_the_quota(self, key: str, offset: int) -> None:
        # Aim a write at the exact edge of the quota, where off-by-one bugs live.
        old = self.live().get(key)
        room = QUOTA - self.used() + (old.size(key) if old else 0)
        size = max(0, room - len(key.encode()) + offset)
        self.set(key, b"f" * size, None)

    @rule(key=KEYS, value=VALUES)
    def set_if_absent(self, key: str, value: bytes) -> None:
        if key in self.live():
            with pytest.raises(VersionConflict):
                self.storage.set(key, value, if_absent=True)
        elif self.model_write({key: value}, None):
            self.storage.set(key, value, if_absent=True)
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set(key, value, if_absent=True)

    @rule(key=KEYS, value=VALUES, stale=st.booleans())
    def compare_and_set(self, key: str, value: bytes, stale: bool) -> None:
        current = self.live().get(key)
        version = (current.version if current else 1) - (1 if stale else 0)
        if version < 1:
            version = self.last_version + 1
        if current is None or current.version != version:
            with pytest.raises(VersionConflict):
                self.storage.set(key, value, if_version=version)
        elif self.model_write({key: value}, None):
            self.storage.set(key, value, if_version=version)
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set(key, value, if_version=version)

    @rule(pairs=st.dictionaries(KEYS, VALUES, max_size=4), ttl=TTLS)
    def set_many(self, pairs: dict[str, bytes], ttl: float | None) -> None:
        if not pairs:
            assert self.storage.set_many(pairs, ttl=ttl) == {}
            return
        first = self.last_version
        if self.model_write(pairs, ttl):
            versions = self.storage.set_many(pairs, ttl=ttl)
            assert versions == {k: first + 1 + i for i, k in enumerate(pairs)}
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set_many(pairs, ttl=ttl)

    @rule(key=KEYS, delta=st.integers(-5, 5))
    def incr(self, key: str, delta: int) -> None:
        current = self.live().get(key)
        if current is not None:
            if not _is_integer(current.value):
                with pytest.raises(WrongValueType):
                    self.storage.incr(key, delta)
                return
            start = int(current.value)
        else:
            start = 0
        result = start + delta
        if self.model_write({key: str(result).encode()}, None, keep=True):
            assert self.storage.incr(key, delta) == result
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.incr(key, delta)

    @rule(operations=st.lists(OPERATIONS, max_size=6))
    def commit(self, operations: list[tuple[object, ...]]) -> None:
        commit = self.storage.atomic()
        expected = self.model_commit(operations, commit)
        event(f"commit: {expected.ok if isinstance(expected, CommitResult) else expected.__name__}")
        if isinstance(expected, CommitResult):
            assert commit.commit() == expected
        else:
            with pytest.raises(expected):
                commit.commit()

    def model_commit(
        self, operations: list[tuple[object, ...]], commit: pluginkv.Commit
    ) -> CommitResult | type[Exception]:
        """Build ``commit`` from ``operations`` and apply them to the model: the result
        the engine must return, or the error it must raise (having changed nothing)."""
        now = self.clock.now
        live = self.live()
        failed: list[str] = []
        # Each written key's final state; None: deleted.
        final: dict[str, Put | None] = {}
        counters: dict[str, int] = {}
        refused: type[Exception] | None = None
        for operation in operations:
            match operation:
                case ("check", str(key), str(how)):
                    actual = live[key].version if key in live else None
                    if how == "current":
                        version = actual
                    elif how == "absent":
                        version = None
                    else:
                        version = self.last_version + 1 if actual is None else actual - 1 or 1
                        version = version if version != actual else version + 1
                    commit.check(key, version=version)
                    if version != actual:
                        failed.append(key)
                case ("set", str(key), bytes(value), ttl, metadata, content_type):
                    assert ttl is None or isinstance(ttl, float)
                    assert metadata is None or isinstance(metadata, dict)
                    assert content_type is None or isinstance(content_type, str)
                    commit.set(key, value, ttl=ttl, metadata=metadata, content_type=content_type)
                    expires_at = None if ttl is None else now + ttl
                    final[key] = Put(value, expires_at, metadata, content_type)
                case ("delete", str(key)):
                    commit.delete(key)
                    final[key] = None
                case ("incr", str(key), int(delta)):
                    commit.incr(key, delta)
                    current: Put | Item | None
                    current = final[key] if key in final else live.get(key)
                    if current is None:
                        counters[key], final[key] = delta, Put(str(delta).encode(), None)
                    elif _is_integer(current.value):
                        counters[key] = int(current.value) + delta
                        final[key] = Put(
                            str(counters[key]).encode(),
                            current.expires_at,
                            current.metadata,
                            current.content_type,
                        )
                    else:
                        refused = refused or WrongValueType
        if failed:
            return CommitResult(False, {}, list(dict.fromkeys(failed)))
        if refused is not None:
            return refused
        # A key deleted here that held nothing (not even an expired row) logs nothing.
        writes = {k: v for k, v in final.items() if v is not None or k in self.items}
        if not self.fits(writes):
            return QuotaExceeded
        versions = {}
        for key, write in writes.items():
            if write is None:
                self.remove([key])
            else:
                versions[key] = self.put(key, write)
        if writes:
            self.after_write()
        return CommitResult(True, versions, [], counters)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        item = self.live().get(key)
        assert self.storage.get(key) == (item.value if item else None)

    @rule(key=KEYS)
    def exist(self, key: str) -> None:
        assert self.storage.exist(key) is (key in self.live())

    @rule(key=KEYS)
    def get_entry(self, key: str) -> None:
        item = self.live().get(key)
        entry = self.storage.get_entry(key)
        if item is None:
            assert entry is None
        else:
            assert entry is not None
            assert (
                entry.value,
                entry.version,
                entry.expires_at,
                entry.created_at,
                entry.metadata,
                entry.content_type,
            ) == (
                item.value,
                item.version,
                item.expires_at,
                item.created_at,
                item.metadata,
                item.content_type,
            )

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self.remove([key])
        self.after_write()
        self.storage.delete(key)

    @rule(keys=st.lists(KEYS, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        live = self.live()
        assert self.storage.get_many(keys) == {k: live[k].value for k in keys if k in live}

    @rule(keys=st.lists(KEYS, max_size=4))
    def delete_many(self, keys: list[str]) -> None:
        expected = len(set(keys) & set(self.live()))
        self.remove(keys)
        self.after_write()
        assert self.storage.delete_many(keys) == expected

    @rule(prefix=PREFIXES)
    def delete_prefix(self, prefix: str) -> None:
        expected = sum(1 for k in self.live() if k.startswith(prefix))
        self.remove([k for k in self.items if k.startswith(prefix)])
        self.after_write()
        assert self.storage.delete_prefix(prefix, all=prefix == "") == expected

    @rule(prefix=PREFIXES, limit=st.integers(1, 3))
    def list_keys(self, prefix: str, limit: int) -> None:
        expected = _key_order(k for k in self.live() if k.startswith(prefix))
        seen: list[str] = []
        cursor = None
        while True:
            page = self.storage.keys(prefix, limit=limit, cursor=cursor)
            assert page.entries or not seen, "an empty page after a cursor"
            seen += [e.key for e in page.entries]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected

    @rule(prefix=PREFIXES, since=st.integers(0, 200), limit=st.integers(1, 4))
    def read_the_log_again(self, prefix: str, since: int, limit: int) -> None:
        # From any earlier position, under any prefix, in small pages: the same changes.
        start = position = min(since, len(self.log))
        got = []
        while page := self.storage.changes(prefix, since=position, limit=limit).changes:
            got += page
            position = page[-1].seq
        expected = [c for c in self.log[start:] if c.key.startswith(prefix)]
        assert [_logged(c) for c in got] == expected

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: any(i.expires_at is not None for i in self.live().values()))
    @rule()
    def wait_for_the_next_expiry(self) -> None:
        # Just past it: expired rows are what the expire changes are made of.
        live = self.live().values()
        self.clock.now = min(i.expires_at for i in live if i.expires_at is not None)

    @rule()
    def sweep(self) -> None:
        expected = sum(1 for i in self.items.values() if not i.live(self.clock.now))
        self.sweep_model()
        assert self.store.sweep_expired() == expected

    @precondition(lambda self: self.url != "memory://")
    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self._open()
        self.storage = self._storage()

    @invariant()
    def usage_matches_the_model(self) -> None:
        usage = self.storage.usage()
        assert (usage.bytes_used, usage.keys, usage.quota_bytes) == (
            self.used(),
            len(self.live()),
            QUOTA,
        )

    @invariant()
    def the_log_has_each_change_once_in_order(self) -> None:
        page = self.storage.changes(since=self.seen, limit=1000)
        assert [_logged(c) for c in page.changes] == self.log[self.seen :]
        assert page.next == len(self.log)
        self.seen = page.next


def _logged(change: pluginkv.Change) -> Logged:
    return Logged(change.seq, change.key, change.kind, change.version, change.at)


class MemoryModel(StorageModel):
    url_template = "memory://"


class SQLiteModel(StorageModel):
    url_template = "sqlite:///{dir}/model.db"


class PostgresModel(StorageModel):
    url_template = ""  # the test run's database, set by the postgres_model fixture

    def __init__(self) -> None:
        super().__init__()
        reset_tables(self.store)


@pytest.fixture(name="postgres_model")
def _postgres_model(postgres_url: str) -> None:
    PostgresModel.url_template = postgres_url


MemoryModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
SQLiteModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
PostgresModel.TestCase.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)
TestStorageOnMemoryMatchesTheModel = MemoryModel.TestCase
TestStorageOnSQLiteMatchesTheModel = SQLiteModel.TestCase
TestStorageOnPostgresMatchesTheModel = pytest.mark.postgres(
    pytest.mark.usefixtures("postgres_model")(PostgresModel.TestCase)
)
