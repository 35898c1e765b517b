"""Settings: every limit and knob, read from ``PLUGINKV_*`` environment variables.

This is the one place settings are defined.  ``open_store(url, **overrides)``
takes the same names as keywords; the CLI's flags map onto them.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "MiB", "Settings", "env_name", "redact_url"]

MiB = 1024 * 1024
DEFAULT_DATABASE_URL = "sqlite:///pluginkv-data/pluginkv.db"

SyncMode = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]

# Ten years, and at most a thousand: an expiry must stay a moment that a date
# can show (datetime ends at year 9999), whatever the clock says today.
_MAX_TTL_DEFAULT = 10 * 365 * 24 * 3600
_MAX_TTL_CEILING = 1000 * 365 * 24 * 3600


def redact_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def env_name(field: str) -> str:
    """The environment variable behind a setting, as error messages name it."""
    return f"PLUGINKV_{field.upper()}"


class Settings(BaseSettings):
    """Configuration of a store; see ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        env_prefix="PLUGINKV_", extra="forbid", validate_assignment=True
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="Where the data lives (see below).",
    )
    read_only: bool = Field(
        default=False,
        description=(
            "Serve reads and refuse every write with `ReadOnly` (see [Read-only "
            "mode](#read-only-mode)), e.g. while the store is exported."
        ),
    )
    default_quota_bytes: int = Field(
        default=100 * MiB,
        ge=0,
        description="Quota of each (workspace, plugin): key bytes plus value bytes.",
    )
    plugin_quotas: dict[str, int] = Field(
        default_factory=dict,
        description='Per-plugin quota, JSON: `{"acme/weather": 1048576}`.',
    )
    max_value_bytes: int = Field(default=32 * MiB, ge=0, description="Largest single value.")
    max_batch_items: int = Field(
        default=1000,
        ge=1,
        description="Most keys in one `get_many`, `set_many` or `delete_many`.",
    )
    max_batch_bytes: int = Field(
        default=64 * MiB, ge=1, description=("Largest JSON body of an HTTP batch request.")
    )
    max_page_size: int = Field(
        default=1000, ge=1, description="Largest `limit` of one `keys()` or `changes()` page."
    )
    max_metadata_bytes: int = Field(
        default=1024,
        ge=2,
        description=(
            "Largest metadata of one entry, as compact UTF-8 JSON; counted in the quota "
            "([engine.md](engine.md#metadata-and-content-type))."
        ),
    )
    max_content_type_bytes: int = Field(
        default=255,
        ge=1,
        le=1024,
        description="Longest content type of one entry (at most 1024); counted in the quota.",
    )
    max_commit_operations: int = Field(
        default=1000,
        ge=1,
        description=(
            "Most operations, checks included, in one `atomic()` commit "
            "([engine.md](engine.md#atomic-commits))."
        ),
    )
    max_commit_bytes: int = Field(
        default=64 * MiB,
        ge=1,
        description="Most bytes (keys, values and metadata of its sets) in one `atomic()` commit.",
    )
    changes_retention_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        json_schema_extra={"doc_default": "86400 (a day)"},
        description=(
            "How long the change log keeps a change; older ones are dropped when the sweeper "
            "runs, and `changes(since=...)` before them raises `ChangesExpired` "
            "([engine.md](engine.md#following-changes))."
        ),
    )
    changes_retention_count: int = Field(
        default=10_000,
        ge=1,
        description="Most changes the log keeps per scope, trimmed when the sweeper runs.",
    )
    watch_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description=(
            "How often one thread per process looks for other processes' commits to a SQLite "
            "file while a watch waits (one cheap query, whatever the number of watchers); "
            "PostgreSQL is told by `LISTEN`/`NOTIFY` instead. At most 10."
        ),
    )
    max_changes_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Longest `wait` of one `GET /v1/changes` long poll, and of one `changes` call "
            "of a Dify plugin's `watch()`; a longer one is refused (400, `InvalidArgument`). "
            "A waiting poll holds a connection or a plugin's call, no thread and no query "
            "([http-api.md](http-api.md#following-changes), "
            "[dify-host.md](dify-host.md#beyond-dify-pluginkvdifystorageselfsession))."
        ),
    )
    changes_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        description=(
            "How often a `GET /v1/changes` event stream with nothing to send sends a "
            "`: keep-alive` comment, so that proxies and clients see it alive."
        ),
    )
    max_ttl_seconds: int = Field(
        default=_MAX_TTL_DEFAULT,
        json_schema_extra={"doc_default": "315360000 (10 years of 365 days)"},
        ge=1,
        le=_MAX_TTL_CEILING,
        description=(
            "Longest TTL a write may ask for; 1 to 31536000000 (1000 years), so every "
            "expiry stays a date."
        ),
    )
    sqlite_synchronous: SyncMode = Field(
        default="FULL",
        description="SQLite's `synchronous` pragma (see Durability).",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="How long a write waits for another writer before `BackendUnavailable`.",
    )
    sqlite_mmap_bytes: int = Field(
        default=2048 * MiB,
        ge=0,
        json_schema_extra={"doc_default": "2147483648 (2 GiB)"},
        description=(
            "SQLite's `mmap_size`: how much of the database file is read through memory "
            "mapping instead of `read()` calls. Large values read about twice as fast, and "
            "a get from a store larger than the mapping costs a `read()` per page outside "
            "it; writes are unaffected. SQLite maps no more than its build allows "
            "(`SQLITE_MAX_MMAP_SIZE`: 2 GiB less 64 KiB unless built otherwise). Address space "
            "only: the mapped pages the service reads are the OS's page cache and count "
            "in its RSS ([benchmarks.md](benchmarks.md"
            "#raw-sqlite3-beside-it-and-pluginkv_sqlite_mmap_bytes)). "
            "0 turns it off (for file systems where mmap misbehaves, such as some network "
            "mounts)."
        ),
    )
    sqlite_disk_reserve_bytes: int = Field(
        default=64 * MiB,
        ge=0,
        description=(
            "A file of this size beside the database (`<database>-reserve`). When the disk"
            " fills up, the store releases it so that deletes, purges and expiry still "
            "run; then writes fill the room deletes made, and a write that needs more "
            "answers `507 disk_full`, until the disk has room for the reserve and as much "
            "again. It must cover the WAL a checkpoint has not copied when the disk fills:"
            " up to 4 MiB plus the last transaction (one value of up to `max_value_bytes`,"
            " or a batch). 0: no reserve ([security.md](security.md#a-full-disk))."
        ),
    )
    postgres_pool_min_size: int = Field(
        default=1, ge=0, description=("PostgreSQL connections each process keeps open.")
    )
    postgres_pool_max_size: int = Field(
        default=10,
        ge=1,
        description=(
            "Most PostgreSQL connections each process opens (the "
            "service's replicas times this must stay under the server's "
            "`max_connections`)."
        ),
    )
    postgres_pool_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long a call waits for a PostgreSQL connection (the database down, or "
            "every connection busy) before `BackendUnavailable`."
        ),
    )
    postgres_connect_timeout_seconds: int = Field(
        default=5, ge=1, description=("How long opening one PostgreSQL connection may take.")
    )
    postgres_statement_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Longest one PostgreSQL statement may run, waiting for a lock included, before"
            " `BackendUnavailable` naming this setting (0: no limit; migrations at "
            "start-up have none). Raise it for purges of very large scopes."
        ),
    )
    postgres_tcp_timeout_seconds: int = Field(
        default=30,
        ge=1,
        description=(
            "How long a PostgreSQL connection may go unanswered before it counts as dead: "
            "idle connections are probed with TCP keepalives after half of it, and data "
            "left unacknowledged for it ends the connection. Keepalive parameters in the "
            "database URL win."
        ),
    )
    postgres_read_url: str = Field(
        default="",
        description=(
            "A standby of the database to serve `get`, `exist`, `get_entry`, `get_meta`, "
            "listing and `get_many` from, e.g. "
            "`postgresql://pluginkv@db1:5432,db2:5432/pluginkv?target_session_attrs=prefer-standby`;"
            " a read goes there only once the standby has applied all it has received "
            "(with a synchronous standby: every write acknowledged before the read), else "
            "to the primary ([scaling.md](scaling.md#reads-from-the-standby)). Empty: the "
            "primary serves every read."
        ),
    )
    postgres_read_wait_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "How long a read waits for the standby to apply what it has received (and for "
            "one of its connections) before the primary serves the read instead."
        ),
    )
    sweep_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description=(
            "How often a write also reclaims expired rows of any scope; 0 turns the sweeper off."
        ),
    )
    sweep_batch_size: int = Field(
        default=1000, ge=1, description=("Most expired rows one sweep reclaims.")
    )

    # -- the service (`pluginkv serve`) ---------------------------------------------
    data_dir: str = Field(
        default="pluginkv-data",
        description=(
            "The service's directory: `pluginkv.db` and `token-secret` (which also signs "
            "debug keys)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address `pluginkv serve` binds.")
    port: int = Field(default=8787, ge=0, le=65535, description="Port `pluginkv serve` binds.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Processes `pluginkv serve` answers with (`--workers`), all on the one port "
            "and database; worker 0 also runs the plugin host. Each holds up to "
            "`PLUGINKV_MAX_CONNECTIONS` connections of its own (see "
            "[scaling.md](scaling.md#several-worker-processes-on-one-machine))."
        ),
    )
    token_secret: str | None = Field(
        default=None,
        min_length=32,
        description=(
            "HS256 secret for tokens (32+ characters); unset: generated into "
            "`<data_dir>/token-secret`, mode 0600. Every replica of one service needs the "
            "same secret."
        ),
    )
    token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=1, description=("Default lifetime of a token.")
    )
    token_max_ttl_seconds: int = Field(
        default=366 * 24 * 3600,
        ge=1,
        description=(
            "Longest lifetime of a token issued by `POST /v1/admin/tokens` (the console's "
            '"create"); a longer `ttl` is a 400 that names it.'
        ),
    )
    token_revocation_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How often the service re-reads the revoked scopes from its database (one "
            "small query per interval, not per request): a revocation made by another "
            "replica or by `pluginkv token revoke` takes effect within it; one made "
            "through this process's `POST /v1/admin/tokens/revoke` at once. On SQLite a "
            "request that finds the interval over re-reads them (microseconds); on "
            "PostgreSQL a background task re-reads them on a reader thread, so a slow or "
            "unreachable database never holds up a request. 0: on every request on SQLite,"
            " every 50 ms on PostgreSQL."
        ),
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description=("Longest a request body may take to arrive (408 after).")
    )
    idle_timeout_seconds: int = Field(
        default=30, ge=1, description=("How long an idle keep-alive connection stays open.")
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description=(
            "Largest request line plus headers of one request; past it the request is "
            "answered `431 headers_too_large` and its connection closed, without reading "
            "the rest (see [security.md](security.md#http-listener-limits))."
        ),
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Longest a request line and headers may take to arrive, counted from the "
            "connection's opening or from the first byte of a keep-alive connection's next"
            " request: a late request is answered `408 request_timeout` and closed, a "
            "connection that sent nothing is closed."
        ),
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description=(
            "Most open HTTP connections of one `pluginkv serve`: one more is answered `503"
            " too_many_connections` (`Retry-After: 1`) as it opens, and closed. At start "
            "the service raises its open-file limit to this plus 256, or refuses to start "
            "if the hard limit (`ulimit -Hn`) is lower."
        ),
    )
    write_group_max: int = Field(
        default=128,
        ge=1,
        description=(
            "Most writes the service commits in one transaction. Writes that arrive while "
            "the previous commit runs share the next one (one fsync for all); each still "
            "succeeds or fails alone. 1 commits each write by itself."
        ),
    )
    write_on_loop_max_seconds: float = Field(
        default=0.0005,
        ge=0,
        allow_inf_nan=False,
        description=(
            "A single-key write (a PUT of at most 64 KiB, a DELETE) that finds the writer "
            "idle and no other request in flight commits on the event loop itself, "
            "saving the hops to the writer thread and back, "
            "while commits take at most this long on average; a request arriving "
            "meanwhile waits for that commit. 0: every write goes through the writer "
            "thread."
        ),
    )
    log_level: LogLevel = Field(
        default="info",
        description=(
            "Least severe message the service and the plugin host log: "
            "`critical`, `error`, `warning`, `info` or `debug` (`serve "
            "--log-level`)."
        ),
    )
    access_log: bool = Field(
        default=False,
        description="Log one line per HTTP request, whatever `log_level` (`serve --access-log`).",
    )

    # -- the Dify plugin host (`pluginkv serve`) ---------------------------------------------
    debug_host: str = Field(
        default="127.0.0.1",
        description="Address on which `pluginkv serve` accepts remote-debug Dify plugins (TCP).",
    )
    debug_port: int = Field(
        default=5003,
        ge=0,
        le=65535,
        description=(
            "Port of that listener (`--debug-port`); Dify's default. 0 binds any free "
            "port; `pluginkv serve --debug-port off` (or `PLUGINKV_DEBUG_PORT=off`) runs "
            "no listener. A port that is taken stops `serve` before it starts listening, "
            "on one line."
        ),
    )
    debug_handshake_max_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description=(
            "Longest line the debug port reads before a plugin's key is checked (at least "
            "1024). A longer first line is refused and the connection closed without "
            "reading the rest; once authenticated, a plugin may send lines as long as a "
            "largest value needs."
        ),
    )
    debug_handshake_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long a new debug-port connection may take to send its key line (the "
            "daemon's limit); it is closed after."
        ),
    )
    debug_max_pending_connections: int = Field(
        default=32,
        ge=1,
        description=(
            "Most debug-port connections waiting for their key check at once; one more is "
            "refused at once. Registered plugins do not count."
        ),
    )
    plugin_envs_dir: str = Field(
        default="",
        json_schema_extra={"doc_default": "empty: `<data_dir>/plugin-envs`"},
        description=(
            "Where the virtual environments of installed Dify plugins go, one per distinct"
            " set of dependency files (`uv.lock` and `pyproject.toml`, or "
            "`requirements.txt`) and interpreter, reused while complete."
        ),
    )
    plugin_pythons: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The interpreter for each Python version a plugin's manifest may ask for "
            '(`meta.runner.version`), JSON: `{"3.12": "/opt/python3.12/bin/python3"}`. A '
            "version not named here is looked for as `python3.12` on `PATH`, then under "
            "pyenv (see [dify-host.md](dify-host.md#what-an-install-builds))."
        ),
    )
    difypkg_max_bytes: int = Field(
        default=50 * MiB,
        ge=0,
        description="Largest `.difypkg` file an install accepts (Dify's own limit on a package).",
    )
    difypkg_max_unpacked_bytes: int = Field(
        default=256 * MiB,
        ge=0,
        description=(
            "Most bytes the files of one `.difypkg` may hold once unpacked, as its zip "
            "directory declares them; checked before anything is written."
        ),
    )
    difypkg_max_files: int = Field(
        default=10_000,
        ge=1,
        description="Most entries (files and folders) one `.difypkg` may hold.",
    )
    plugin_start_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "How long a tool call or endpoint request for an installed plugin that is "
            "starting or restarting waits for it to run, before it fails with `404 "
            "plugin_not_found` naming the plugin's state, its last error and this setting."
            " 0: fail at once. A `failed` plugin is never waited for."
        ),
    )
    plugin_log_max_bytes: int = Field(
        default=5 * MiB,
        ge=1024,
        description=(
            "Size at which an installed plugin's log file "
            "(`<data_dir>/plugin-logs/<author>/<name>.log`) is rotated; a single line is "
            "cut to it. At least 1024."
        ),
    )
    plugin_log_backups: int = Field(
        default=3,
        ge=1,
        description=(
            "Rotated log files kept per installed plugin (`.log.1` the newest); at least 1."
        ),
    )
    endpoint_max_body_bytes: int = Field(
        default=10 * MiB,
        ge=0,
        description=(
            "Largest request body an endpoint (`/e/<hook_id>/...`)"
            " passes on to its plugin (413 above), the daemon's "
            "limit."
        ),
    )
    files_url: str = Field(
        default="",
        json_schema_extra={"doc_default": "empty: `http://<host>:<port>`"},
        description=(
            "Base URL at which plugins reach the service, for the upload and preview URLs "
            "of the files they upload (`self.session.file.upload`); set it when the "
            "service binds `0.0.0.0` or sits behind a proxy. Dify's `FILES_URL`."
        ),
    )
    files_access_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long such an upload or preview URL stays valid (Dify's `FILES_ACCESS_TIMEOUT`)."
        ),
    )
    session_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Longest a Dify plugin may take to answer one request (a "
            "tool call) before the caller gets `504 plugin_timeout`. "
            "The SDK has no timeout of its own."
        ),
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A remote plugin that sends no heartbeat for this long is disconnected and "
            "unregistered (the daemon's limit; plugins beat every 10 s)."
        ),
    )
