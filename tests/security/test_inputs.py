"""Inputs with a bound and versions that never go back, against every entry point.

Each attack that once worked is here: a TTL of epoch milliseconds or ``1e308``
that broke every listing of its scope, an empty prefix that wiped a scope, an
admin purge that handed old versions out again, a percent-encoded hook id that
reached the plugin as ``GET /``, and a public endpoint error that told anyone
the host's paths.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from pluginkv import InvalidArgument, Store, VersionConflict
from pluginkv.cli import main
from pluginkv.dify.plugin_storage import ChannelStorage
from pluginkv.errors import PluginFailed, PluginTimeout
from pluginkv.host.extended_storage import serve_extended
from pluginkv.server.app import create_app
from pluginkv.server.host_routes import hook_and_target
from pluginkv.services.readers import Readers
from pluginkv.services.tokens import Tokens
from pluginkv.services.write_groups import WriteQueue
from pluginkv.transfer import export_store, import_lines

from ..postgres import connect

WS, PLUGIN = "ws-1", "acme/weather"
SECRET = "test-secret-" + "y" * 40
SETTING = "PLUGINKV_MAX_TTL_SECONDS"
# Epoch milliseconds typed as a TTL, the largest float's neighbourhood, and the non-numbers.
BAD_TTLS = [1_796_409_300_000, 1e308, math.nan, math.inf, -1, 0]
ENGINES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _strict_json(text: str | bytes) -> Any:
    """JSON as every parser reads it: ``NaN`` and ``Infinity`` are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(name="engine", params=ENGINES)
def _engine(open_store: Callable[..., Store], request: pytest.FixtureRequest) -> Store:
    return open_store(request.param)


@pytest.fixture(name="tokens")
def _tokens() -> Tokens:
    return Tokens(SECRET, default_ttl=3600)


@pytest.fixture(name="client")
def _client(engine: Store, tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(store=engine, tokens=tokens)) as client:
        yield client


@pytest.fixture(name="auth")
def _auth(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(workspace=WS, plugin=PLUGIN)}"}


@pytest.fixture(name="admin")
def _admin(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(admin=True)}"}


def _url(key: str) -> str:
    return "/v1/kv/" + quote(key, safe="")


# -- TTL ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ttl", BAD_TTLS)
def test_a_ttl_out_of_range_is_refused_and_stores_nothing(engine: Store, ttl: float) -> None:
    storage = engine.storage(workspace=WS, plugin=PLUGIN)
    with pytest.raises(InvalidArgument, match="ttl"):
        storage.set("k", b"v", ttl=ttl)
    with pytest.raises(InvalidArgument, match="ttl"):
        storage.set_many({"a": b"1", "b": b"2"}, ttl=ttl)
    with pytest.raises(InvalidArgument, match="ttl"):
        storage.set_json("j", {"x": 1}, ttl=ttl)
    assert storage.keys().entries == []
    assert storage.usage().keys == 0


def test_a_ttl_over_the_setting_names_it(open_store: Callable[..., Store]) -> None:
    storage = open_store("memory", max_ttl_seconds=60).storage(workspace=WS, plugin=PLUGIN)
    with pytest.raises(InvalidArgument, match=SETTING):
        storage.set("k", b"v", ttl=60.5)
    storage.set("k", b"v", ttl=60)
    entry = storage.get_entry("k")
    assert entry is not None and entry.expires_at == entry.updated_at + 60


def test_the_default_ttl_limit_is_ten_years(engine: Store) -> None:
    storage = engine.storage(workspace=WS, plugin=PLUGIN)
    ten_years = 10 * 365 * 24 * 3600
    storage.set("k", b"v", ttl=ten_years)
    with pytest.raises(InvalidArgument, match=SETTING):
        storage.set("k", b"v", ttl=ten_years + 1)
    assert storage.get_entry("k").expires_at == engine.clock() + ten_years  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [0, -5, 10**12])
def test_the_ttl_setting_must_be_positive_and_bounded(
    open_store: Callable[..., Store], value: int
) -> None:
    with pytest.raises(InvalidArgument, match=SETTING):
        open_store("memory", max_ttl_seconds=value)


@pytest.mark.parametrize("ttl", ["1796409300000", "1e308", "nan", "inf", "-inf", "0"])
def test_http_refuses_a_ttl_out_of_range(
    client: TestClient, auth: dict[str, str], ttl: str
) -> None:
    answer = client.put(_url("k"), params={"ttl": ttl}, content=b"v", headers=auth)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_argument"
    assert client.get(_url("k"), headers=auth).status_code == 404


def test_http_names_the_ttl_setting(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.put(_url("k"), params={"ttl": "1e308"}, content=b"v", headers=auth)
    assert SETTING in answer.json()["error"]["message"]


@pytest.mark.parametrize("ttl", ["1796409300000", "1e308", "NaN", "Infinity", "-Infinity"])
def test_a_batch_with_a_ttl_out_of_range_stores_nothing(
    client: TestClient, auth: dict[str, str], ttl: str
) -> None:
    # Python's JSON reads NaN and Infinity, so they reach the engine as floats.
    body = '{"items": {"a": "MQ==", "b": "Mg=="}, "ttl": ' + ttl + "}"
    headers = {**auth, "Content-Type": "application/json"}
    answer = client.post("/v1/batch/set", content=body, headers=headers)
    assert answer.status_code == 400
    assert client.get("/v1/keys", headers=auth).json()["entries"] == []


def test_the_clients_refuse_a_ttl_out_of_range(open_store: Callable[..., Store]) -> None:
    """The service's limit, not the client's: it answers 400 and stores nothing."""
    for backend in ("remote", "remote-async"):
        storage = open_store(backend).storage(workspace=WS, plugin=PLUGIN)
        with pytest.raises(InvalidArgument, match=SETTING):
            storage.set("k", b"v", ttl=1_796_409_300_000)
        with pytest.raises(InvalidArgument, match=SETTING):
            storage.set_many({"k": b"v"}, ttl=1e308)
        assert storage.get("k") is None


def test_the_cli_refuses_a_ttl_out_of_range(tmp_path: Path) -> None:
    scope = ["--db", str(tmp_path / "kv.db"), "--workspace", WS, "--plugin", PLUGIN]
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--db", str(tmp_path / "kv.db")]).exit_code == 0
    for ttl in ("1796409300000", "1e308", "nan", "inf"):
        result = runner.invoke(main, ["kv", "set", "k", "v", "--ttl", ttl, *scope])
        assert result.exit_code == 3, result.output
        assert "ttl" in result.stderr
    assert SETTING in runner.invoke(main, ["kv", "set", "k", "v", "--ttl", "1e308", *scope]).stderr
    assert runner.invoke(main, ["kv", "get", "k", *scope]).exit_code == 1


class _PluginkvHost:
    """The SDK's storage invocation on pluginkv's host: ``ChannelStorage`` reaches the engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _backwards_invoke(self, kind: Any, data_type: Any, request: dict[str, Any]) -> Any:
        async def serve() -> Any:
            writer, readers = WriteQueue(max_group=1), Readers(threads=1)
            try:
                storage = self.store.storage(workspace=WS, plugin=PLUGIN)
                return await serve_extended(
                    request, storage=storage, store=self.store, writer=writer, readers=readers
                )
            finally:
                readers.shutdown()
                writer.shutdown()

        yield asyncio.run(serve())


def test_the_plugin_channel_refuses_a_ttl_out_of_range(open_store: Callable[..., Store]) -> None:
    store = open_store("memory")
    channel = ChannelStorage(_PluginkvHost(store))
    with pytest.raises(InvalidArgument, match=SETTING):
        channel.set("k", b"v", ttl=1_796_409_300_000)
    with pytest.raises(InvalidArgument, match=SETTING):
        channel.set_many({"k": b"v"}, ttl=1e308)
    assert store.storage(workspace=WS, plugin=PLUGIN).get("k") is None


# -- rows an older version stored ----------------------------------------------------------------
def _plant(store: Store, backend: str, expires_at: float, request: pytest.FixtureRequest) -> str:
    """Write a row with ``expires_at`` straight into the database, as an older version did.

    Returns the database URL, for the CLI.
    """
    row = (WS, PLUGIN, "old", 4, 1, store.clock(), store.clock(), expires_at, b"v")
    sql = (
        "INSERT INTO pluginkv_entries (workspace, plugin, key, size, version, created_at, "
        "updated_at, expires_at, value) VALUES ({})"
    )
    url = store.settings.database_url
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql.format(", ".join("?" * 9)), row)
        conn.close()
    else:
        with connect(request.getfixturevalue("postgres_url")) as conn:
            conn.execute(sql.format(", ".join(["%s"] * 9)), row)
    return url


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(1_796_409_300_000, id="epoch-milliseconds"),
        pytest.param(1e308, id="1e308"),
        pytest.param(math.inf, id="infinity"),
    ],
)
@pytest.mark.parametrize("backend", SQL_ENGINES)
def test_a_row_with_an_expiry_out_of_range_reads_back_everywhere(
    open_store: Callable[..., Store],
    backend: str,
    offset: float,
    tokens: Tokens,
    auth: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    store = open_store(backend)
    url = _plant(store, backend, store.clock() + offset, request)
    storage = store.storage(workspace=WS, plugin=PLUGIN)

    entry = storage.get_entry("old")
    assert entry is not None and entry.value == b"v"
    assert storage.get_meta("old") is not None
    [listed] = storage.keys().entries
    assert listed.key == "old"
    shown = listed.as_dict()["expires_at"]
    assert shown is None if math.isinf(offset) else shown == store.clock() + offset

    out = io.BytesIO()
    export_store(store, out)
    lines = [_strict_json(line) for line in out.getvalue().splitlines()]
    assert [line["key"] for line in lines if line["type"] == "entry"] == ["old"]

    scope = ["--db", url, "--workspace", WS, "--plugin", PLUGIN]
    runner = CliRunner()
    keys = runner.invoke(main, ["kv", "keys", *scope])
    assert keys.exit_code == 0, keys.output
    _header, line = keys.stdout.splitlines(keepends=True)
    assert line.startswith("old\t4\t1\t")
    meta = runner.invoke(main, ["kv", "meta", "old", *scope])
    assert (meta.exit_code, meta.stdout) == (0, line)
    meta_json = runner.invoke(main, ["kv", "meta", "old", "--json", *scope])
    assert _strict_json(meta_json.stdout)["key"] == "old"

    with TestClient(create_app(store=store, tokens=tokens)) as client:
        page = client.get("/v1/keys", headers=auth)
        assert page.status_code == 200 and _strict_json(page.content)["entries"][0]["key"] == "old"
        assert client.get(_url("old"), headers=auth).content == b"v"
        assert client.head(_url("old"), headers=auth).status_code == 200


def test_an_expiry_past_year_9999_prints_as_seconds(
    open_store: Callable[..., Store], request: pytest.FixtureRequest
) -> None:
    store = open_store("sqlite")
    url = _plant(store, "sqlite", 1e308, request)
    result = CliRunner().invoke(
        main, ["kv", "keys", "--db", url, "--workspace", WS, "--plugin", PLUGIN]
    )
    assert result.stdout.splitlines()[1:] == ["old\t4\t1\t1e+308"]


# -- the empty prefix --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [*ENGINES, "remote", "remote-async"])
def test_an_empty_prefix_deletes_nothing_without_all(
    open_store: Callable[..., Store], backend: str
) -> None:
    storage = open_store(backend).storage(workspace=WS, plugin=PLUGIN)
    storage.set_many({"a/1": b"x", "b/1": b"y"})
    with pytest.raises(InvalidArgument, match="all=True"):
        storage.delete_prefix("")
    with pytest.raises(InvalidArgument, match="all=True"):
        storage.delete_prefix("a/", all=True)
    assert storage.usage().keys == 2
    assert storage.delete_prefix("a/") == 1
    assert storage.delete_prefix("", all=True) == 1
    assert storage.usage().keys == 0


def test_the_plugin_channel_needs_all_for_an_empty_prefix(
    open_store: Callable[..., Store],
) -> None:
    store = open_store("memory")
    store.storage(workspace=WS, plugin=PLUGIN).set("k", b"v")
    channel = ChannelStorage(_PluginkvHost(store))
    with pytest.raises(InvalidArgument, match="all=True"):
        channel.delete_prefix("")
    assert channel.get("k") == b"v"
    assert channel.delete_prefix("", all=True) == 1


@pytest.mark.parametrize(
    "params",
    [{"prefix": ""}, {}, {"prefix": "", "all": "false"}],
    ids=["empty", "missing", "false"],
)
def test_http_refuses_an_empty_prefix_delete_without_all(
    client: TestClient, auth: dict[str, str], params: dict[str, str]
) -> None:
    client.put(_url("k"), content=b"v", headers=auth)
    answer = client.delete("/v1/keys", params=params, headers=auth)
    assert answer.status_code == 400
    assert "all=true" in answer.json()["error"]["message"]
    assert client.get(_url("k"), headers=auth).content == b"v"


def test_http_deletes_every_key_with_all(client: TestClient, auth: dict[str, str]) -> None:
    client.put(_url("k"), content=b"v", headers=auth)
    answer = client.delete("/v1/keys", params={"prefix": "", "all": "true"}, headers=auth)
    assert answer.json() == {"deleted": 1}
    assert client.get(_url("k"), headers=auth).status_code == 404


def test_the_cli_needs_all_for_an_empty_prefix(tmp_path: Path) -> None:
    scope = ["--db", str(tmp_path / "kv.db"), "--workspace", WS, "--plugin", PLUGIN]
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--db", str(tmp_path / "kv.db")]).exit_code == 0
    runner.invoke(main, ["kv", "set", "a/1", "x", *scope])
    runner.invoke(main, ["kv", "set", "b/1", "y", *scope])
    refused = runner.invoke(main, ["kv", "delete-prefix", "", *scope])
    assert refused.exit_code == 3 and "--all" in refused.stderr
    assert runner.invoke(main, ["kv", "delete-prefix", *scope]).exit_code == 3
    assert runner.invoke(main, ["kv", "delete-prefix", "a/", "--all", *scope]).exit_code == 3
    assert runner.invoke(main, ["kv", "delete-prefix", "a/", *scope]).stdout == "1\n"
    assert runner.invoke(main, ["kv", "delete-prefix", "--all", *scope]).stdout == "1\n"
    assert runner.invoke(main, ["kv", "keys", "--json", *scope]).stdout == ""


# -- versions ----------------------------------------------------------------------------------
def _version(store: Store, key: str) -> int:
    entry = store.storage(workspace=WS, plugin=PLUGIN).get_entry(key)
    assert entry is not None
    return entry.version


def _purge(store: Store) -> None:
    store.purge(workspace=WS, plugin=PLUGIN)


def _delete_all(store: Store) -> None:
    store.storage(workspace=WS, plugin=PLUGIN).delete_prefix("", all=True)


def _expire(store: Store) -> None:
    storage = store.storage(workspace=WS, plugin=PLUGIN)
    storage.set("k", b"short", ttl=1)
    store.clock.advance(2)  # type: ignore[attr-defined]
    assert store.sweep_expired() == 1


def _export_purge_import(store: Store) -> None:
    """A restore: the scope is backed up, lost, and loaded again."""
    out = io.BytesIO()
    export_store(store, out)
    store.purge(workspace=WS, plugin=PLUGIN)
    report = import_lines(store, out.getvalue().splitlines())
    assert (report.scopes, report.entries, report.refused) == (1, 1, [])


@pytest.mark.parametrize(
    "operation", [_purge, _delete_all, _expire, _export_purge_import], ids=lambda f: f.__name__[1:]
)
def test_versions_never_go_back(engine: Store, operation: Callable[[Store], None]) -> None:
    storage = engine.storage(workspace=WS, plugin=PLUGIN)
    for value in (b"1", b"2", b"3"):
        storage.set("k", value)
    before = _version(engine, "k")

    operation(engine)
    storage.set("k", b"new")

    assert _version(engine, "k") > before
    with pytest.raises(VersionConflict):
        storage.set("k", b"stale", if_version=before)


def test_a_purge_keeps_the_counter_but_not_the_quota_override(engine: Store) -> None:
    engine.set_quota(workspace=WS, plugin=PLUGIN, quota_bytes=10)
    storage = engine.storage(workspace=WS, plugin=PLUGIN)
    storage.set("k", b"v")
    assert engine.purge(workspace=WS, plugin=PLUGIN) == 1
    assert storage.usage().quota_bytes == engine.settings.default_quota_bytes
    storage.set("k", b"v" * 100)
    assert _version(engine, "k") == 2


def test_an_etag_from_before_a_purge_never_matches_after(
    client: TestClient, auth: dict[str, str], admin: dict[str, str]
) -> None:
    client.put(_url("k"), content=b"old", headers=auth)
    etag = client.get(_url("k"), headers=auth).headers["etag"]
    purged = client.post("/v1/admin/purge", json={"workspace": WS, "plugin": PLUGIN}, headers=admin)
    assert purged.json() == {"deleted": 1}
    client.put(_url("k"), content=b"new", headers=auth)

    fresh = client.get(_url("k"), headers={**auth, "If-None-Match": etag})
    assert (fresh.status_code, fresh.content) == (200, b"new")
    stale = client.put(_url("k"), content=b"stale", headers={**auth, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(_url("k"), headers=auth).content == b"new"


# -- /e/ ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (b"/e/abc/visits", ("abc", b"/visits")),
        (b"/e/%61%62c/visits", ("abc", b"/visits")),
        (b"/e/abc/a%2Fb%20c", ("abc", b"/a%2Fb%20c")),
        (b"/e/abc/", ("abc", b"/")),
        (b"/e/ab%2Fcd/x", ("ab/cd", b"/x")),  # no such hook: a %2F cannot split it
    ],
)
def test_the_hook_id_and_path_come_from_the_raw_path(
    raw_path: bytes, expected: tuple[str, bytes]
) -> None:
    assert hook_and_target({"type": "http", "raw_path": raw_path, "path": "?"}) == expected


def test_a_root_path_is_not_part_of_the_target() -> None:
    scope = {"type": "http", "raw_path": b"/kv/e/%61bc/x%2F", "path": "?", "root_path": "/kv"}
    assert hook_and_target(scope) == ("abc", b"/x%2F")


@pytest.fixture(name="host_client")
def _host_client(
    open_store: Callable[..., Store], tokens: Tokens, tmp_path: Path
) -> Iterator[TestClient]:
    store = open_store("memory", data_dir=str(tmp_path))
    with TestClient(create_app(store=store, tokens=tokens)) as client:
        yield client


def _down_endpoint(client: TestClient) -> str:
    """A new endpoint whose plugin is not running (stopped since), with a secret setting."""
    host = client.app.state.host  # type: ignore[attr-defined]
    return str(host.endpoints.create(WS, PLUGIN, {"api_key": "s3cret"}).hook_id)


@pytest.mark.parametrize("spelling", ["plain", "percent-encoded"])
def test_an_endpoint_error_tells_the_caller_only_its_status_and_request_id(
    host_client: TestClient, spelling: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = _down_endpoint(host_client)
    if spelling == "percent-encoded":
        hook = "".join(f"%{byte:02x}" for byte in hook.encode())
    with caplog.at_level(logging.WARNING, logger="pluginkv.dify"):
        answer = host_client.get(f"/e/{hook}/visits")
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == 404
    assert answer.text == f"404 Not Found (request id {request_id})\n"
    assert answer.headers["content-type"].startswith("text/plain")
    [logged] = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert PLUGIN in logged


def test_an_unknown_hook_is_a_bare_404(host_client: TestClient) -> None:
    answer = host_client.get("/e/0123/visits")
    assert answer.status_code == 404
    assert answer.text == f"404 Not Found (request id {answer.headers['x-request-id']})\n"


def test_a_body_over_the_endpoint_limit_still_names_the_setting(host_client: TestClient) -> None:
    """The caller's own mistake is told, with its limit: that says nothing of the host."""
    hook = _down_endpoint(host_client)
    host_client.app.state.settings.endpoint_max_body_bytes = 10  # type: ignore[attr-defined]
    answer = host_client.post(f"/e/{hook}/notes", content=b"x" * 11)
    assert answer.status_code == 413
    assert "PLUGINKV_ENDPOINT_MAX_BODY_BYTES" in answer.text
    assert answer.headers["x-request-id"] in answer.text


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PluginFailed("Traceback: File /srv/plugins/acme/main.py, stderr: key=s3cret"), 502),
        (PluginTimeout("plugin acme/weather at /srv/plugins/acme did not answer"), 504),
        (RuntimeError("/srv/pluginkv-data/dify-endpoints.json is unreadable"), 500),
    ],
    ids=["plugin-failed", "plugin-timeout", "host-bug"],
)
def test_what_failed_goes_to_the_log_not_to_the_caller(
    host_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
) -> None:
    hook = _down_endpoint(host_client)

    async def failing(hook_id: str, raw: bytes) -> AsyncIterator[Any]:
        raise error
        yield  # an async generator, as PluginHost.endpoint_stream is

    monkeypatch.setattr(host_client.app.state.host, "endpoint_stream", failing)  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="pluginkv.dify"):
        answer = host_client.get(f"/e/{hook}/visits")
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == status
    assert answer.text == f"{status} {HTTPStatus(status).phrase} (request id {request_id})\n"
    [logged] = [r for r in caplog.records if request_id in r.getMessage()]
    assert "/srv/" in logged.getMessage()
