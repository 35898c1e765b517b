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
        description="sqlite:///relative.db, sqlite:////absolute.db, "
        "postgresql://user@host/db or memory://",
    )
    read_only: bool = Field(
        default=False,
        description="Refuse every write with ReadOnly and serve reads, e.g. during an export; "
        "SQLite opens the file read-only, and no migration runs.",
    )
    default_quota_bytes: int = Field(
        default=100 * MiB, ge=0, description="Quota of each (workspace, plugin)."
    )
    plugin_quotas: dict[str, int] = Field(
        default_factory=dict,
        description='Per-plugin quota overrides, JSON: {"acme/weather": 1048576}.',
    )
    max_value_bytes: int = Field(
        default=32 * MiB, ge=0, description="Largest single value accepted."
    )
    max_batch_items: int = Field(
        default=1000, ge=1, description="Most keys in one get_many/set_many/delete_many."
    )
    max_batch_bytes: int = Field(
        default=64 * MiB, ge=1, description="Largest JSON body of a batch request."
    )
    max_page_size: int = Field(
        default=1000, ge=1, description="Largest `limit` a keys() page may ask for."
    )
    max_ttl_seconds: int = Field(
        default=_MAX_TTL_DEFAULT,
        ge=1,
        le=_MAX_TTL_CEILING,
        description="Longest TTL a write may ask for.",
    )
    sqlite_synchronous: SyncMode = Field(
        default="FULL",
        description="SQLite `synchronous` pragma: FULL survives power loss, "
        "NORMAL survives a process crash.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000, ge=0, description="How long a write waits for the lock."
    )
    sqlite_mmap_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="How much of the database file SQLite reads through mmap (0: none).",
    )
    sqlite_disk_reserve_bytes: int = Field(
        default=64 * MiB,
        ge=0,
        description="Space held beside the SQLite database and released when the disk is full, "
        "so deletes still run (0: none).",
    )
    postgres_pool_min_size: int = Field(
        default=1, ge=0, description="PostgreSQL connections each process keeps open."
    )
    postgres_pool_max_size: int = Field(
        default=10, ge=1, description="Most PostgreSQL connections each process opens."
    )
    postgres_pool_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a call waits for a PostgreSQL connection before BackendUnavailable.",
    )
    postgres_connect_timeout_seconds: int = Field(
        default=5, ge=1, description="How long opening one PostgreSQL connection may take."
    )
    postgres_statement_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest one PostgreSQL statement may run, waiting for a lock included, "
        "before BackendUnavailable (0: no limit).",
    )
    postgres_tcp_timeout_seconds: int = Field(
        default=30,
        ge=1,
        description="How long a PostgreSQL connection may go unanswered (TCP keepalives, "
        "unacknowledged data) before it counts as dead.",
    )
    postgres_read_url: str = Field(
        default="",
        description="A standby of the database (postgresql://...) to serve get, exist, "
        "listing and get_many from; empty: the primary serves every read.",
    )
    postgres_read_wait_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long a read waits for the standby to apply what it has received "
        "before the primary serves it instead.",
    )
    sweep_interval_seconds: float = Field(
        default=60.0, ge=0, description="How often writes reclaim expired rows."
    )
    sweep_batch_size: int = Field(
        default=1000, ge=1, description="Most expired rows reclaimed per sweep."
    )

    # -- the service (`pluginkv serve`) ---------------------------------------------
    data_dir: str = Field(
        default="pluginkv-data",
        description="Where the service keeps its database and signing secret.",
    )
    host: str = Field(default="127.0.0.1", description="Address the service binds.")
    port: int = Field(default=8787, ge=0, le=65535, description="Port the service binds.")
    token_secret: str | None = Field(
        default=None,
        min_length=32,
        description="HS256 secret for tokens; generated into the data directory if unset.",
    )
    token_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=1, description="Default lifetime of a token."
    )
    token_max_ttl_seconds: int = Field(
        default=366 * 24 * 3600,
        ge=1,
        description="Longest lifetime of a token issued by POST /v1/admin/tokens.",
    )
    token_revocation_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often the service re-reads the revoked scopes from the database "
        "(0: on every request on SQLite, every 50 ms on PostgreSQL).",
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Longest a request body may take to arrive."
    )
    idle_timeout_seconds: int = Field(
        default=30, ge=1, description="How long an idle keep-alive connection stays open."
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line plus headers of one request (431 above).",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest a request line and headers may take to arrive, and a new "
        "connection to send its first byte.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Most open HTTP connections; one more is answered 503 and closed.",
    )
    write_group_max: int = Field(
        default=128,
        ge=1,
        description="Most concurrent writes the service commits together (1: each alone).",
    )
    log_level: LogLevel = Field(
        default="info", description="Least severe message the service logs (serve --log-level)."
    )
    access_log: bool = Field(
        default=False, description="Log one line per HTTP request (serve --access-log)."
    )

    # -- the Dify plugin host (`pluginkv serve`) ---------------------------------------------
    debug_host: str = Field(
        default="127.0.0.1", description="Address remote-debug plugins connect to."
    )
    debug_port: int = Field(
        default=5003,
        ge=0,
        le=65535,
        description="Port remote-debug plugins connect to (0: any free port).",
    )
    debug_handshake_max_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Longest line the debug port reads before a plugin's key is checked.",
    )
    debug_handshake_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a debug-port connection may take to send its key line.",
    )
    debug_max_pending_connections: int = Field(
        default=32,
        ge=1,
        description="Most debug-port connections waiting for their key check at once.",
    )
    plugin_envs_dir: str = Field(
        default="",
        description="Where installed plugins' virtual environments go "
        "(empty: <data_dir>/plugin-envs).",
    )
    plugin_pythons: dict[str, str] = Field(
        default_factory=dict,
        description="Interpreters for the Python versions manifests ask for "
        '(meta.runner.version), JSON: {"3.12": "/usr/bin/python3.12"}; '
        "looked for on PATH and under pyenv otherwise.",
    )
    difypkg_max_bytes: int = Field(
        default=50 * MiB, ge=0, description="Largest .difypkg file an install accepts."
    )
    difypkg_max_unpacked_bytes: int = Field(
        default=256 * MiB,
        ge=0,
        description="Most bytes the files of one .difypkg may hold once unpacked.",
    )
    difypkg_max_files: int = Field(
        default=10_000, ge=1, description="Most files and folders one .difypkg may hold."
    )
    plugin_start_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a tool call or endpoint request waits for its installed plugin "
        "while that is starting or restarting.",
    )
    plugin_log_max_bytes: int = Field(
        default=5 * MiB,
        ge=1024,
        description="Size at which an installed plugin's log file is rotated.",
    )
    plugin_log_backups: int = Field(
        default=3, ge=1, description="Rotated log files kept per installed plugin."
    )
    endpoint_max_body_bytes: int = Field(
        default=10 * MiB, ge=0, description="Largest request body an endpoint passes on."
    )
    files_url: str = Field(
        default="",
        description="Base URL plugins reach the service at, for file upload and preview URLs "
        "(empty: http://<host>:<port>).",
    )
    files_access_timeout_seconds: float = Field(
        default=300.0, gt=0, description="How long a file upload or preview URL stays valid."
    )
    session_timeout_seconds: float = Field(
        default=300.0, gt=0, description="Longest a plugin may take to answer one request."
    )
    heartbeat_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A plugin silent (no heartbeat) this long is dropped as dead.",
    )
