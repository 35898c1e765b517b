"""The behaviour every way of reaching a ``Storage`` must show (memory, SQLite, ...)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import pluginkv
from pluginkv import (
    InvalidArgument,
    InvalidKey,
    InvalidValueType,
    QuotaExceeded,
    Storage,
    Store,
    ValueTooLarge,
    VersionConflict,
    WrongValueType,
)
from pluginkv.keys import Scope

from .conftest import BACKENDS, FakeClock


@pytest.fixture(name="backend", params=[*BACKENDS, "channel"])
def _backend(request: pytest.FixtureRequest) -> str:
    """Every backend of the other suites, and the plugin's own storage channel."""
    return str(request.param)


# The plugin channel cleans keys as file paths before the engine sees them, as
# Dify's daemon does (pluginkv/dify/key_paths.py): a plugin reads back what it
# wrote under either spelling on both hosts, so these spellings name other keys.
CLEANED_AS_PATHS = pytest.mark.not_on_channel(
    reason="keys are cleaned as file paths, as on Dify's daemon ('a/../b' is 'b', "
    "'a//b' is 'a/b', '/a' is 'a', '' names no file)"
)

BAD_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("k" * 257, id="257-bytes"),
    pytest.param("é" * 129, id="258-bytes-of-utf8"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\x85b", id="c1-control"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("../etc/passwd", id="dot-dot"),
    pytest.param("a/../b", id="dot-dot-inside", marks=CLEANED_AS_PATHS),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param(b"bytes-key", id="bytes"),
    pytest.param(42, id="int"),
    pytest.param(None, id="none"),
]


class TestDocumentedFour:
    def test_get_returns_what_set_stored(self, storage: Storage) -> None:
        storage.set("k", b"v")
        assert storage.get("k") == b"v"

    def test_get_of_absent_key_is_none(self, storage: Storage) -> None:
        assert storage.get("nope") is None

    def test_set_overwrites(self, storage: Storage) -> None:
        storage.set("k", b"one")
        storage.set("k", b"two")
        assert storage.get("k") == b"two"

    def test_set_returns_the_new_version_as_an_int(self, storage: Storage) -> None:
        first = storage.set("k", b"v")
        second = storage.set("k", b"w")
        assert type(first) is int and type(second) is int
        assert second > first
        assert storage.get_entry("k").version == second  # type: ignore[union-attr]

    def test_exist_is_a_bool(self, storage: Storage) -> None:
        assert storage.exist("k") is False
        storage.set("k", b"")
        assert storage.exist("k") is True

    def test_empty_value_is_present_not_absent(self, storage: Storage) -> None:
        storage.set("k", b"")
        assert storage.get("k") == b""

    def test_delete_removes_the_key(self, storage: Storage) -> None:
        storage.set("k", b"v")
        storage.delete("k")
        assert storage.get("k") is None
        assert storage.exist("k") is False

    def test_deleting_an_absent_key_is_not_an_error(self, storage: Storage) -> None:
        assert storage.delete("never-set") is None  # type: ignore[func-returns-value]

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(bytearray(b"ba"), id="bytearray"),
            pytest.param(memoryview(b"mv"), id="memoryview"),
        ],
    )
    def test_bytes_like_values_are_stored_as_bytes(
        self, storage: Storage, value: bytearray | memoryview
    ) -> None:
        storage.set("k", value)  # type: ignore[arg-type]
        assert storage.get("k") == bytes(value)
        assert type(storage.get("k")) is bytes

    def test_binary_values_round_trip(self, storage: Storage) -> None:
        value = bytes(range(256)) * 4
        storage.set("bin", value)
        assert storage.get("bin") == value


class TestKeys:
    @pytest.mark.parametrize("key", BAD_KEYS)
    @pytest.mark.parametrize(
        "verb", ["get", "exist", "delete", "set", "get_entry", "get_meta", "incr"]
    )
    def test_invalid_key_is_refused_by_every_verb(
        self, storage: Storage, key: object, verb: str
    ) -> None:
        call: Callable[..., object] = getattr(storage, verb)
        args = (key, b"v") if verb == "set" else (key,)
        with pytest.raises(InvalidKey):
            call(*args)
        assert storage.usage().keys == 0

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_invalid_key_in_a_batch_stores_nothing(self, storage: Storage, key: object) -> None:
        with pytest.raises(InvalidKey):
            storage.set_many({"good": b"v", key: b"v"})  # type: ignore[dict-item]
        assert storage.get("good") is None

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("k" * 256, id="256-bytes"),
            pytest.param("é" * 128, id="256-bytes-of-utf8"),
            pytest.param("a/b/c.json", id="path-like"),
            pytest.param("a//b", id="double-slash", marks=CLEANED_AS_PATHS),
            pytest.param("/leading", id="leading-slash", marks=CLEANED_AS_PATHS),
            pytest.param("emoji-🙂", id="emoji"),
            pytest.param(" spaced key ", id="spaces"),
            pytest.param(".hidden", id="single-dot"),
        ],
    )
    def test_valid_keys_round_trip_exactly(self, storage: Storage, key: str) -> None:
        storage.set(key, b"v")
        assert storage.get(key) == b"v"
        assert [e.key for e in storage.keys().entries] == [key]

    @CLEANED_AS_PATHS
    def test_keys_are_not_normalised(self, storage: Storage) -> None:
        storage.set("a//b", b"double")
        storage.set("a/b", b"single")
        storage.set("caf\u00e9", b"composed")
        storage.set("cafe\u0301", b"decomposed")
        assert storage.get("a//b") == b"double"
        assert storage.get("a/b") == b"single"
        assert storage.get("caf\u00e9") == b"composed"
        assert storage.get("cafe\u0301") == b"decomposed"

    @CLEANED_AS_PATHS
    def test_invalid_key_error_says_why(self, storage: Storage) -> None:
        with pytest.raises(InvalidKey, match="backslash"):
            storage.get("a\\b")
        with pytest.raises(InvalidKey, match="1 to 256 bytes"):
            storage.get("")


class TestValues:
    def test_str_value_is_a_clear_type_error(self, storage: Storage) -> None:
        with pytest.raises(TypeError, match="encode it first"):
            storage.set("k", "text")  # type: ignore[arg-type]
        assert storage.get("k") is None

    @pytest.mark.parametrize("value", [None, 42, ["list"]])
    def test_non_bytes_value_is_refused(self, storage: Storage, value: object) -> None:
        with pytest.raises(InvalidValueType):
            storage.set("k", value)  # type: ignore[arg-type]

    def test_value_over_the_limit_is_refused_and_names_the_setting(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        storage = open_store(backend, max_value_bytes=10).storage(workspace="w", plugin="a/b")
        storage.set("k", b"x" * 10)
        with pytest.raises(ValueTooLarge, match="PLUGINKV_MAX_VALUE_BYTES") as info:
            storage.set("k", b"x" * 11)
        assert (info.value.size, info.value.limit) == (11, 10)
        assert storage.get("k") == b"x" * 10

    # Around 256 KiB the SQLite backend changes how it reads a value.
    @pytest.mark.parametrize("size", [256 * 1024 - 2, 256 * 1024 - 1, 256 * 1024 + 1, 3 << 20])
    def test_values_of_every_size_read_back_exactly(self, storage: Storage, size: int) -> None:
        value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        storage.set("k", value)
        entry = storage.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.size) == (value, size + 1)
        assert storage.get("k") == value
        assert storage.get_many(["k"]) == {"k": value}
        storage.set("k", b"small")
        assert storage.get("k") == b"small"
        assert storage.get_entry("k").version == entry.version + 1  # type: ignore[union-attr]

    def test_default_value_limit_is_32_mib(self, store: Store) -> None:
        assert store.settings.max_value_bytes == 32 * 1024 * 1024


class TestIsolation:
    def test_workspaces_never_see_each_other(self, store: Store) -> None:
        a = store.storage(workspace="ws-a", plugin="acme/weather")
        b = store.storage(workspace="ws-b", plugin="acme/weather")
        a.set("shared/key", b"from a")
        assert b.get("shared/key") is None
        assert not b.exist("shared/key")
        assert b.keys().entries == []
        assert b.get_many(["shared/key"]) == {}
        assert b.delete_prefix("", all=True) == 0
        b.delete("shared/key")
        assert b.usage().keys == 0
        assert a.get("shared/key") == b"from a"

    def test_plugins_in_one_workspace_never_see_each_other(self, store: Store) -> None:
        p = store.storage(workspace="ws", plugin="acme/p")
        q = store.storage(workspace="ws", plugin="acme/q")
        p.set_many({"x/1": b"1", "x/2": b"2"})
        q.set("x/1", b"q")
        assert q.delete_many(["x/1", "x/2"]) == 1
        assert p.get_many(["x/1", "x/2"]) == {"x/1": b"1", "x/2": b"2"}
        assert q.incr("x/1") == 1
        assert p.get("x/1") == b"1"
        assert p.usage().keys == 2 and q.usage().keys == 1

    def test_quotas_are_per_scope(self, open_store: Callable[..., Store], backend: str) -> None:
        store = open_store(backend, default_quota_bytes=10)
        store.storage(workspace="w1", plugin="a/b").set("k", b"123456789")
        store.storage(workspace="w2", plugin="a/b").set("k", b"123456789")

    @pytest.mark.parametrize(
        ("workspace", "plugin"),
        [
            pytest.param("", "a/b", id="empty-workspace"),
            pytest.param("w/x", "a/b", id="slash-in-workspace"),
            pytest.param("w", "weather", id="no-author"),
            pytest.param("w", "acme/weather:1.0.0", id="versioned-plugin"),
            pytest.param("w", "acme/weather/x", id="three-parts"),
        ],
    )
    def test_malformed_scope_is_refused_every_time(
        self, store: Store, workspace: str, plugin: str
    ) -> None:
        for _ in range(2):
            with pytest.raises(InvalidArgument):
                store.storage(workspace=workspace, plugin=plugin)

    def test_a_declared_quota_reaches_handles_made_before_it(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"x")
        store.declare_quota(
            plugin="a/b", workspaces=["w"], quota_bytes=10, source="the manifest of a/b", by="r"
        )
        with pytest.raises(QuotaExceeded, match="manifest of a/b"):
            store.storage(workspace="w", plugin="a/b").set("k", b"x" * 20)

    def test_a_declared_quota_binds_its_workspaces_alone_until_withdrawn(
        self, store: Store
    ) -> None:
        store.declare_quota(
            plugin="a/b", workspaces=["w"], quota_bytes=10, source="the manifest of a/b", by="r"
        )
        store.storage(workspace="other", plugin="a/b").set("k", b"x" * 20)
        with pytest.raises(QuotaExceeded, match="manifest of a/b"):
            store.storage(workspace="w", plugin="a/b").set("k", b"x" * 20)
        store.withdraw_quota("r")
        store.storage(workspace="w", plugin="a/b").set("k", b"x" * 20)

    def test_the_lowest_declared_quota_counts_and_none_raises_one(self, store: Store) -> None:
        low = store.settings.default_quota_bytes // 2
        for by, quota in (("install", low), ("debug", store.settings.default_quota_bytes * 2)):
            store.declare_quota(plugin="a/b", workspaces=["w"], quota_bytes=quota, source=by, by=by)
        assert store.storage(workspace="w", plugin="a/b").usage().quota_bytes == low
        store.withdraw_quota("install")
        usage = store.storage(workspace="w", plugin="a/b").usage()
        assert usage.quota_bytes == store.settings.default_quota_bytes

    def test_handles_of_one_scope_see_the_same_data(self, store: Store) -> None:
        first = store.storage(workspace="w", plugin="a/b")
        first.set("k", b"1")
        assert store.storage(workspace="w", plugin="a/b").get("k") == b"1"
        assert store.storage(workspace="w", plugin="a/c").get("k") is None


class TestQuota:
    @pytest.fixture(name="small")
    def _small(self, open_store: Callable[..., Store], backend: str) -> Storage:
        return open_store(backend, default_quota_bytes=100).storage(workspace="w", plugin="a/b")

    def test_usage_counts_key_and_value_bytes(self, storage: Storage) -> None:
        storage.set("abc", b"12345")
        storage.set("é", b"")
        usage = storage.usage()
        assert (usage.bytes_used, usage.keys) == (3 + 5 + 2, 2)

    def test_default_quota_is_100_mib(self, storage: Storage) -> None:
        assert storage.usage().quota_bytes == 100 * 1024 * 1024

    def test_write_past_quota_raises_and_stores_nothing(self, small: Storage) -> None:
        small.set("a", b"x" * 90)
        with pytest.raises(QuotaExceeded) as info:
            small.set("b", b"x" * 10)
        assert (info.value.used, info.value.limit, info.value.needed) == (91, 100, 11)
        assert "PLUGINKV_DEFAULT_QUOTA_BYTES" in str(info.value)
        assert small.get("b") is None
        assert small.usage().bytes_used == 91

    def test_write_up_to_exactly_the_quota_is_accepted(self, small: Storage) -> None:
        small.set("k", b"x" * 99)
        assert small.usage().bytes_used == 100

    def test_overwrite_counts_only_the_difference(self, small: Storage) -> None:
        small.set("k", b"x" * 90)
        small.set("k", b"y" * 99)
        small.set("k", b"z" * 10)
        assert small.usage().bytes_used == 11

    def test_delete_gives_bytes_back(self, small: Storage) -> None:
        small.set("k", b"x" * 99)
        small.delete("k")
        small.set("j", b"y" * 99)
        assert small.usage().bytes_used == 100

    def test_failed_batch_stores_nothing(self, small: Storage) -> None:
        small.set("a", b"x" * 50)
        with pytest.raises(QuotaExceeded):
            small.set_many({"a": b"", "b": b"x" * 60, "c": b"x" * 60})
        assert small.get_many(["a", "b", "c"]) == {"a": b"x" * 50}
        assert small.usage().bytes_used == 51

    def test_shrinking_write_is_accepted_when_over_a_lowered_quota(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"x" * 50)
        store.set_quota(workspace="w", plugin="a/b", quota_bytes=10)
        with pytest.raises(QuotaExceeded, match="quota override"):
            storage.set("j", b"x")
        storage.set("k", b"x" * 40)
        assert storage.usage() == pluginkv.Usage(41, 1, 10)

    def test_plugin_quota_setting_overrides_the_default(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        quotas = {"acme/big": 1000, "acme/small": 5}
        store = open_store(backend, plugin_quotas=quotas, default_quota_bytes=10)
        assert store.storage(workspace="w", plugin="acme/big").usage().quota_bytes == 1000
        assert store.storage(workspace="w", plugin="acme/small").usage().quota_bytes == 5
        assert store.storage(workspace="w", plugin="acme/other").usage().quota_bytes == 10
        with pytest.raises(QuotaExceeded, match=r"PLUGINKV_PLUGIN_QUOTAS\['acme/small'\]"):
            store.storage(workspace="w", plugin="acme/small").set("k", b"x" * 20)

    def test_scope_override_beats_settings_and_can_be_cleared(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        store.set_quota(workspace="w", plugin="a/b", quota_bytes=5)
        assert storage.usage().quota_bytes == 5
        store.set_quota(workspace="w", plugin="a/b", quota_bytes=None)
        assert storage.usage().quota_bytes == store.settings.default_quota_bytes

    def test_incr_respects_the_quota(self, small: Storage) -> None:
        small.set("pad", b"x" * 96)
        with pytest.raises(QuotaExceeded):
            small.incr("n", 1)
        assert small.get("n") is None


class TestTTL:
    def test_entry_is_gone_the_moment_it_expires(self, storage: Storage, clock: FakeClock) -> None:
        storage.set("k", b"v", ttl=10)
        clock.advance(9.999)
        assert storage.get("k") == b"v"
        clock.advance(0.001)
        assert storage.get("k") is None
        assert storage.exist("k") is False
        assert storage.get_entry("k") is None
        assert storage.keys().entries == []
        assert storage.get_many(["k"]) == {}
        assert storage.usage().keys == 0
        assert storage.usage().bytes_used == 0

    def test_expired_entry_bytes_return_to_the_quota(
        self, open_store: Callable[..., Store], backend: str, clock: FakeClock
    ) -> None:
        storage = open_store(backend, default_quota_bytes=100).storage(workspace="w", plugin="a/b")
        storage.set("old", b"x" * 90, ttl=5)
        clock.advance(5)
        storage.set("new", b"y" * 90)
        assert storage.usage().bytes_used == 93

    def test_set_without_ttl_clears_a_previous_ttl(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("k", b"v", ttl=5)
        storage.set("k", b"w")
        clock.advance(100)
        assert storage.get("k") == b"w"

    def test_entry_reports_its_expiry(self, storage: Storage, clock: FakeClock) -> None:
        storage.set("k", b"v", ttl=30)
        entry = storage.get_entry("k")
        assert entry is not None and entry.expires_at == clock.now + 30
        assert storage.keys().entries[0].expires_at == clock.now + 30

    def test_expired_key_counts_as_absent_for_if_absent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("lock", b"a", ttl=1)
        clock.advance(1)
        storage.set("lock", b"b", if_absent=True)
        assert storage.get("lock") == b"b"

    @pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
    def test_bad_ttl_is_refused(self, storage: Storage, ttl: object) -> None:
        with pytest.raises(InvalidArgument, match="ttl"):
            storage.set("k", b"v", ttl=ttl)  # type: ignore[arg-type]
        assert storage.get("k") is None

    def test_sweeper_reclaims_expired_rows_of_untouched_scopes(
        self, open_store: Callable[..., Store], backend: str, clock: FakeClock
    ) -> None:
        store = open_store(backend, sweep_interval_seconds=60)
        idle = store.storage(workspace="w", plugin="a/idle")
        idle.set_many({f"k{i}": b"x" for i in range(10)}, ttl=1)
        busy = store.storage(workspace="w", plugin="a/busy")
        clock.advance(61)
        busy.set("k", b"v")  # a write after the interval runs the sweeper
        idle_scope = Scope("w", "a/idle")
        with store.backend.read() as tx:
            assert tx.expired_totals(idle_scope, clock.now) == (0, 0)
            assert tx.scope_state(idle_scope).bytes_used == 0

    def test_sweep_reports_how_many_rows_it_reclaimed(self, store: Store, clock: FakeClock) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set_many({"a": b"1", "b": b"2"}, ttl=1)
        storage.set("c", b"3")
        clock.advance(2)
        assert store.sweep_expired() == 2
        assert storage.usage() == pluginkv.Usage(2, 1, store.settings.default_quota_bytes)


class TestVersions:
    def test_versions_grow_with_every_write(self, storage: Storage) -> None:
        storage.set("k", b"1")
        first = storage.get_entry("k")
        storage.set("k", b"2")
        second = storage.get_entry("k")
        assert first is not None and second is not None
        assert second.version > first.version
        assert second.created_at == first.created_at

    def test_entry_carries_its_metadata(self, storage: Storage, clock: FakeClock) -> None:
        storage.set("key", b"value")
        entry = storage.get_entry("key")
        assert entry == pluginkv.Entry(
            "key", b"value", entry.version, 8, clock.now, clock.now, None
        )  # type: ignore[union-attr]

    def test_metadata_alone_is_the_entrys_without_its_value(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        assert storage.get_meta("kéy") is None
        storage.set("kéy", b"\x00" * 300_000, ttl=60)  # past SQLite's inline read size
        entry = storage.get_entry("kéy")
        assert entry is not None
        assert storage.get_meta("kéy") == pluginkv.EntryMeta(
            "kéy", 4 + 300_000, entry.version, clock.now, clock.now, clock.now + 60
        )
        clock.advance(61)
        assert storage.get_meta("kéy") is None

    def test_compare_and_set_succeeds_on_the_current_version(self, storage: Storage) -> None:
        storage.set("k", b"1")
        version = storage.get_entry("k").version  # type: ignore[union-attr]
        storage.set("k", b"2", if_version=version)
        assert storage.get("k") == b"2"

    def test_compare_and_set_on_a_stale_version_conflicts_and_changes_nothing(
        self, storage: Storage
    ) -> None:
        storage.set("k", b"1")
        stale = storage.get_entry("k").version  # type: ignore[union-attr]
        storage.set("k", b"2")
        with pytest.raises(VersionConflict) as info:
            storage.set("k", b"3", if_version=stale)
        assert info.value.expected == stale
        assert info.value.actual == storage.get_entry("k").version  # type: ignore[union-attr]
        assert storage.get("k") == b"2"

    def test_compare_and_set_on_an_absent_key_conflicts(self, storage: Storage) -> None:
        with pytest.raises(VersionConflict, match="absent"):
            storage.set("k", b"v", if_version=1)
        assert storage.get("k") is None

    def test_a_recreated_key_never_reuses_a_version(self, storage: Storage) -> None:
        storage.set("k", b"1")
        old = storage.get_entry("k").version  # type: ignore[union-attr]
        storage.delete("k")
        storage.set("k", b"1")
        with pytest.raises(VersionConflict):
            storage.set("k", b"2", if_version=old)

    def test_set_if_absent_stores_once(self, storage: Storage) -> None:
        storage.set("k", b"first", if_absent=True)
        with pytest.raises(VersionConflict, match="already holds"):
            storage.set("k", b"second", if_absent=True)
        assert storage.get("k") == b"first"

    def test_the_version_set_returns_is_the_one_compare_and_set_takes(
        self, storage: Storage
    ) -> None:
        version = storage.set("k", b"1")
        version = storage.set("k", b"2", if_version=version)
        storage.set("k", b"3", if_version=version)
        assert storage.get("k") == b"3"

    def test_set_if_exists_replaces_only_a_present_value(self, storage: Storage) -> None:
        with pytest.raises(VersionConflict, match="absent"):
            storage.set("k", b"v", if_exists=True)
        assert storage.get("k") is None
        storage.set("k", b"v")
        assert storage.set("k", b"w", if_exists=True) > 0
        assert storage.get("k") == b"w"

    def test_delete_if_exists_refuses_an_absent_key(self, storage: Storage) -> None:
        with pytest.raises(VersionConflict):
            storage.delete("k", if_exists=True)
        storage.set("k", b"v")
        storage.delete("k", if_exists=True)
        assert storage.get("k") is None

    def test_conditional_delete(self, storage: Storage) -> None:
        storage.set("k", b"v")
        version = storage.get_entry("k").version  # type: ignore[union-attr]
        with pytest.raises(VersionConflict):
            storage.delete("k", if_version=version + 1)
        storage.delete("k", if_version=version)
        assert storage.get("k") is None

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"if_version": 0}, id="zero"),
            pytest.param({"if_version": "1"}, id="str"),
            pytest.param({"if_version": 1, "if_absent": True}, id="both"),
            pytest.param({"if_absent": True, "if_exists": True}, id="absent-and-exists"),
            pytest.param({"if_version": 1, "if_exists": True}, id="version-and-exists"),
        ],
    )
    def test_bad_conditions_are_refused(self, storage: Storage, kwargs: dict[str, object]) -> None:
        with pytest.raises(InvalidArgument):
            storage.set("k", b"v", **kwargs)  # type: ignore[arg-type]


class TestListing:
    def test_keys_lists_in_utf8_byte_order_with_metadata(self, storage: Storage) -> None:
        for key in ["b", "a", "é", "Z", "a/1", "\U0001f642", "\uffff"]:
            storage.set(key, b"vv")
        page = storage.keys()
        assert [e.key for e in page.entries] == sorted(
            ["b", "a", "é", "Z", "a/1", "\U0001f642", "\uffff"], key=str.encode
        )
        assert page.next_cursor is None
        assert page.entries[0].size == len(page.entries[0].key.encode()) + 2

    def test_prefix_selects_only_matching_keys(self, storage: Storage) -> None:
        storage.set_many({"user/1": b"", "user/2": b"", "users": b"", "user0": b"", "usa": b""})
        assert [e.key for e in storage.keys("user/").entries] == ["user/1", "user/2"]
        assert [e.key for e in storage.keys("user").entries] == [
            "user/1",
            "user/2",
            "user0",
            "users",
        ]

    def test_prefix_ending_in_the_highest_code_point(self, storage: Storage) -> None:
        storage.set_many({"a\U0010ffff": b"", "a\U0010ffffb": b"", "b": b""})
        assert [e.key for e in storage.keys("a\U0010ffff").entries] == [
            "a\U0010ffff",
            "a\U0010ffffb",
        ]

    def test_cursor_walks_every_key_exactly_once(self, storage: Storage) -> None:
        expected = [f"k{i:03d}" for i in range(25)]
        storage.set_many(dict.fromkeys(expected, b"v"))
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = storage.keys("k", limit=7, cursor=cursor)
            assert page.entries, "no empty page while more remain"
            seen += [e.key for e in page.entries]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected
        assert pages == 4

    def test_iter_keys_follows_the_cursors_to_the_last_page(self, storage: Storage) -> None:
        storage.set_many({f"p/{i:02}": b"v" for i in range(7)})
        storage.set("q", b"v")
        listed = [entry.key for entry in storage.iter_keys("p/", page_size=3)]
        assert listed == [f"p/{i:02}" for i in range(7)]
        assert [entry.key for entry in storage.iter_keys()] == [*listed, "q"]

    def test_last_full_page_has_no_cursor(self, storage: Storage) -> None:
        storage.set_many({"a": b"", "b": b""})
        assert storage.keys(limit=2).next_cursor is None

    def test_expired_entries_never_make_an_empty_page(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        storage.set("a", b"")
        storage.set_many({f"m{i}": b"" for i in range(10)}, ttl=1)
        storage.set("z", b"")
        clock.advance(1)
        page = storage.keys(limit=1)
        assert [e.key for e in page.entries] == ["a"]
        page = storage.keys(limit=1, cursor=page.next_cursor)
        assert [e.key for e in page.entries] == ["z"]
        assert page.next_cursor is None

    @pytest.mark.parametrize("limit", [0, 1001, -1, "10", 2.5])
    def test_limit_out_of_range_is_refused(self, storage: Storage, limit: object) -> None:
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_PAGE_SIZE"):
            storage.keys(limit=limit)  # type: ignore[arg-type]

    def test_limit_of_1000_is_accepted(self, storage: Storage) -> None:
        storage.set_many({f"k{i}": b"" for i in range(1000)})
        assert len(storage.keys(limit=1000).entries) == 1000

    @pytest.mark.parametrize("cursor", ["%%%", "////", ""])
    def test_garbage_cursor_is_refused(self, storage: Storage, cursor: str) -> None:
        with pytest.raises(InvalidArgument, match="cursor"):
            storage.keys(cursor=cursor)

    def test_prefix_with_a_forbidden_character_is_refused(self, storage: Storage) -> None:
        with pytest.raises(InvalidKey):
            storage.keys("a\\")


class TestBatches:
    def test_get_many_returns_the_present_ones(self, storage: Storage) -> None:
        storage.set_many({"a": b"1", "b": b"2"})
        assert storage.get_many(["a", "b", "c"]) == {"a": b"1", "b": b"2"}

    def test_get_many_of_nothing_is_empty(self, storage: Storage) -> None:
        assert storage.get_many([]) == {}

    def test_set_many_with_ttl_applies_to_all(self, storage: Storage, clock: FakeClock) -> None:
        storage.set_many({"a": b"1", "b": b"2"}, ttl=1)
        clock.advance(1)
        assert storage.get_many(["a", "b"]) == {}

    def test_set_many_returns_each_keys_new_version(self, storage: Storage) -> None:
        versions = storage.set_many({"a": b"1", "b": b"2"})
        assert versions == {
            key: storage.get_entry(key).version  # type: ignore[union-attr]
            for key in ("a", "b")
        }

    def test_set_many_with_one_bad_value_stores_nothing(self, storage: Storage) -> None:
        with pytest.raises(TypeError):
            storage.set_many({"a": b"1", "b": "two"})  # type: ignore[dict-item]
        assert storage.get("a") is None

    def test_delete_many_counts_what_existed(self, storage: Storage) -> None:
        storage.set_many({"a": b"1", "b": b"2"})
        assert storage.delete_many(["a", "b", "c"]) == 2
        assert storage.usage().keys == 0

    def test_delete_prefix_counts_and_frees(self, storage: Storage) -> None:
        storage.set_many({"tmp/1": b"x", "tmp/2": b"y", "keep": b"z"})
        assert storage.delete_prefix("tmp/") == 2
        assert storage.usage().bytes_used == 5
        assert storage.delete_prefix("", all=True) == 1
        assert storage.usage().bytes_used == 0

    def test_batch_over_the_limit_is_refused(
        self, open_store: Callable[..., Store], backend: str
    ) -> None:
        storage = open_store(backend, max_batch_items=3).storage(workspace="w", plugin="a/b")
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_BATCH_ITEMS"):
            storage.get_many(["a", "b", "c", "d"])
        with pytest.raises(InvalidArgument, match="PLUGINKV_MAX_BATCH_ITEMS"):
            storage.set_many({k: b"" for k in "abcd"})

    def test_a_single_string_is_not_a_batch(self, storage: Storage) -> None:
        with pytest.raises(InvalidArgument):
            storage.get_many("abc")


class TestIncr:
    def test_incr_starts_from_zero(self, storage: Storage) -> None:
        assert storage.incr("n") == 1
        assert storage.incr("n", 41) == 42
        assert storage.get("n") == b"42"

    def test_negative_delta(self, storage: Storage) -> None:
        assert storage.incr("n", -5) == -5
        assert storage.get("n") == b"-5"

    def test_incr_of_an_ascii_integer_set_by_hand(self, storage: Storage) -> None:
        storage.set("n", b"10")
        assert storage.incr("n") == 11

    @pytest.mark.parametrize("value", [b"abc", b"1.5", b" 1", b"", b"\xd9\xa3", b"1_000"])
    def test_incr_of_a_non_integer_is_refused(self, storage: Storage, value: bytes) -> None:
        storage.set("n", value)
        with pytest.raises(WrongValueType, match="not a decimal integer"):
            storage.incr("n")
        assert storage.get("n") == value

    def test_incr_keeps_the_ttl(self, storage: Storage, clock: FakeClock) -> None:
        storage.set("n", b"1", ttl=10)
        storage.incr("n")
        clock.advance(10)
        assert storage.get("n") is None

    def test_incr_leaving_64_bits_is_refused(self, storage: Storage) -> None:
        storage.set("n", str(2**63 - 1).encode())
        with pytest.raises(InvalidArgument, match="64-bit"):
            storage.incr("n")

    @pytest.mark.parametrize("delta", [2**63, -(2**63) - 1])
    def test_a_delta_outside_64_bits_is_refused_even_when_the_sum_fits(
        self, storage: Storage, delta: int
    ) -> None:
        storage.set("n", b"-1" if delta > 0 else b"1")
        with pytest.raises(InvalidArgument, match="64-bit"):
            storage.incr("n", delta)
        assert storage.get("n") == (b"-1" if delta > 0 else b"1")

    @pytest.mark.parametrize("delta", [1.5, "1", True])
    def test_non_int_delta_is_refused(self, storage: Storage, delta: object) -> None:
        with pytest.raises(InvalidArgument):
            storage.incr("n", delta)  # type: ignore[arg-type]


class TestJSON:
    def test_json_round_trips(self, storage: Storage) -> None:
        obj = {"name": "Zoë", "n": [1, 2.5, None, True]}
        storage.set_json("prefs", obj)
        assert storage.get_json("prefs") == obj
        assert storage.get("prefs") == '{"name":"Zoë","n":[1,2.5,null,true]}'.encode()

    def test_get_json_default_when_absent(self, storage: Storage) -> None:
        assert storage.get_json("nope", default={"x": 1}) == {"x": 1}

    def test_get_json_of_non_json_is_refused(self, storage: Storage) -> None:
        storage.set("k", b"\xff not json")
        with pytest.raises(WrongValueType, match="not JSON"):
            storage.get_json("k")

    def test_set_json_of_unencodable_is_refused(self, storage: Storage) -> None:
        with pytest.raises(TypeError):
            storage.set_json("k", {"x": object()})
        assert storage.get("k") is None


class TestStoreHandles:
    def test_store_is_a_context_manager(self, backend: str, tmp_path: object) -> None:
        url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path}/ctx.db"
        with pluginkv.open_store(url) as store:
            store.storage(workspace="w", plugin="a/b").set("k", b"v")

    def test_data_survives_reopening(self, open_store: Callable[..., Store]) -> None:
        first = open_store("sqlite")
        first.storage(workspace="w", plugin="a/b").set("k", b"v")
        first.close()
        again = open_store("sqlite")
        assert again.storage(workspace="w", plugin="a/b").get("k") == b"v"

    def test_scopes_lists_usage(self, store: Store) -> None:
        store.storage(workspace="w2", plugin="a/b").set("k", b"v")
        store.storage(workspace="w1", plugin="a/c").set("kk", b"vv")
        listed = [(str(s.workspace), s.plugin, u.bytes_used) for s, u in store.scopes()]
        assert listed == [("w1", "a/c", 4), ("w2", "a/b", 2)]

    def test_purge_removes_one_scope(self, store: Store) -> None:
        store.storage(workspace="w", plugin="a/b").set_many({"x": b"", "y": b""})
        store.storage(workspace="w", plugin="a/c").set("x", b"")
        assert store.purge(workspace="w", plugin="a/b") == 2
        assert store.storage(workspace="w", plugin="a/b").usage().keys == 0
        assert store.storage(workspace="w", plugin="a/c").get("x") == b""

    def test_a_purge_never_gives_a_version_out_again(self, store: Store) -> None:
        storage = store.storage(workspace="w", plugin="a/b")
        storage.set("k", b"old")
        old = storage.get_entry("k")
        assert old is not None
        store.purge(workspace="w", plugin="a/b")
        storage.set("k", b"new")
        with pytest.raises(VersionConflict):
            storage.set("k", b"stale", if_version=old.version)
        assert storage.get("k") == b"new"

    def test_repr_names_the_scope(self, open_store: Callable[..., Store]) -> None:
        storage = open_store("memory").storage(workspace="ws-1", plugin="acme/weather")
        assert repr(storage) == "<Storage workspace='ws-1' plugin='acme/weather'>"


class TestSettings:
    def test_a_bad_setting_names_its_environment_variable(self) -> None:
        with pytest.raises(InvalidArgument, match="PLUGINKV_DEFAULT_QUOTA_BYTES"):
            pluginkv.open_store("memory://", default_quota_bytes=-1)

    def test_an_unknown_setting_is_refused(self) -> None:
        with pytest.raises(InvalidArgument, match="bogus"):
            pluginkv.open_store("memory://", bogus=1)

    def test_settings_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PLUGINKV_PLUGIN_QUOTAS", '{"acme/big": 5}')
        with pluginkv.open_store("memory://") as store:
            assert store.storage(workspace="w", plugin="acme/big").usage().quota_bytes == 5

    def test_malformed_json_in_the_environment_is_a_clear_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PLUGINKV_PLUGIN_QUOTAS", "{bad")
        with pytest.raises(InvalidArgument, match="plugin_quotas"):
            pluginkv.open_store("memory://")
