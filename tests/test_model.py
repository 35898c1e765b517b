"""A hypothesis state machine drives ``Storage`` and a plain-dict model side by side.

The model is the contract in its simplest form: a dict of key -> (value,
version, expires_at), a counter for versions, a clock moved by hand and a
small quota.  Any difference in what a call returns or raises is a bug.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pluginkv
from pluginkv import QuotaExceeded, Storage, VersionConflict, WrongValueType

from .conftest import FakeClock
from .postgres import reset_tables

QUOTA = 200
KEYS = st.sampled_from(["a", "b", "a/b", "a/c", "ab", "é", "zz/1"])
PREFIXES = st.sampled_from(["", "a", "a/", "z", "é", "q"])
VALUES = st.binary(max_size=60) | st.integers(-50, 50).map(lambda n: str(n).encode())
TTLS = st.none() | st.sampled_from([1.0, 2.5, 10.0])


@dataclass
class Item:
    value: bytes
    version: int
    created_at: float
    expires_at: float | None


class StorageModel(RuleBasedStateMachine):
    url_template = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.dir = tempfile.TemporaryDirectory()
        self.url = self.url_template.format(dir=self.dir.name)
        self.store = self._open()
        self.storage = self._storage()
        self.items: dict[str, Item] = {}
        self.last_version = 0

    def _open(self) -> pluginkv.Store:
        return pluginkv.open_store(
            self.url, clock=self.clock, default_quota_bytes=QUOTA, sweep_interval_seconds=5
        )

    def _storage(self) -> Storage:
        return self.store.storage(workspace="ws", plugin="acme/model")

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    # -- the model -------------------------------------------------------------
    def live(self) -> dict[str, Item]:
        now = self.clock.now
        return {k: i for k, i in self.items.items() if i.expires_at is None or i.expires_at > now}

    def used(self) -> int:
        return sum(len(k.encode()) + len(i.value) for k, i in self.live().items())

    def model_write(
        self, pairs: dict[str, bytes], ttl: float | None, keep_ttl: bool = False
    ) -> bool:
        """Apply a write to the model; False if the quota refuses it."""
        live = self.live()
        growth = sum(
            len(k.encode()) + len(v) - (len(k.encode()) + len(live[k].value) if k in live else 0)
            for k, v in pairs.items()
        )
        if growth > 0 and self.used() + growth > QUOTA:
            return False
        now = self.clock.now
        for key, value in pairs.items():
            old = live.get(key)
            self.last_version += 1
            expires_at = now + ttl if ttl is not None else None
            if keep_ttl and old is not None:
                expires_at = old.expires_at
            created = old.created_at if old is not None else now
            self.items[key] = Item(value, self.last_version, created, expires_at)
        return True

    # -- rules -----------------------------------------------------------------
    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if self.model_write({key: value}, ttl):
            self.storage.set(key, value, ttl=ttl)
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set(key, value, ttl=ttl)

    @rule(key=KEYS, offset=st.sampled_from([-1, 0, 1]))
    def fill_to_the_quota(self, key: str, offset: int) -> None:
        # Aim a write at the exact edge of the quota, where off-by-one bugs live.
        old = self.live().get(key)
        room = QUOTA - self.used() + (len(key.encode()) + len(old.value) if old else 0)
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
        if not pairs or self.model_write(pairs, ttl):
            self.storage.set_many(pairs, ttl=ttl)
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.set_many(pairs, ttl=ttl)

    @rule(key=KEYS, delta=st.integers(-5, 5))
    def incr(self, key: str, delta: int) -> None:
        current = self.live().get(key)
        if current is not None:
            digits = current.value.removeprefix(b"-")
            if not (digits.isdigit() and len(digits) <= 19):
                with pytest.raises(WrongValueType):
                    self.storage.incr(key, delta)
                return
            start = int(current.value)
        else:
            start = 0
        result = start + delta
        if self.model_write({key: str(result).encode()}, None, keep_ttl=True):
            assert self.storage.incr(key, delta) == result
        else:
            with pytest.raises(QuotaExceeded):
                self.storage.incr(key, delta)

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
            assert (entry.value, entry.version, entry.expires_at, entry.created_at) == (
                item.value,
                item.version,
                item.expires_at,
                item.created_at,
            )

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self.items.pop(key, None)
        self.storage.delete(key)

    @rule(keys=st.lists(KEYS, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        live = self.live()
        assert self.storage.get_many(keys) == {k: live[k].value for k in keys if k in live}

    @rule(keys=st.lists(KEYS, max_size=4))
    def delete_many(self, keys: list[str]) -> None:
        expected = len(set(keys) & set(self.live()))
        for key in keys:
            self.items.pop(key, None)
        assert self.storage.delete_many(keys) == expected

    @rule(prefix=PREFIXES)
    def delete_prefix(self, prefix: str) -> None:
        expected = sum(1 for k in self.live() if k.startswith(prefix))
        self.items = {k: i for k, i in self.items.items() if not k.startswith(prefix)}
        assert self.storage.delete_prefix(prefix, all=prefix == "") == expected

    @rule(prefix=PREFIXES, limit=st.integers(1, 3))
    def list_keys(self, prefix: str, limit: int) -> None:
        expected = sorted((k for k in self.live() if k.startswith(prefix)), key=str.encode)
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

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweep(self) -> None:
        self.store.sweep_expired()

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
