"""The ``pluginkv`` command line: the storage verbs of one plugin in one workspace.

Exit codes (documented in ``docs/cli.md``): 0 success; 1 absent key (``kv get``)
or false (``kv exist``); 2 usage error (click's); 3 pluginkv refused or failed
(any ``PluginKVError``); 4 a ``--if-version`` / ``--if-absent`` condition failed.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from . import __version__, private_files
from .config import Settings, env_name, redact_url
from .errors import PluginKVError, VersionConflict
from .keys import check_scope, check_workspace
from .models import EntryMeta, shown_expiry
from .storage import Storage
from .store import Store, load_settings, open_store

__all__ = ["EXIT_CONFLICT", "EXIT_ERROR", "EXIT_FALSE", "main"]

EXIT_FALSE = 1  # kv get: the key is absent; kv exist: false
EXIT_ERROR = 3  # any PluginKVError other than a failed condition
EXIT_CONFLICT = 4  # VersionConflict: --if-version or --if-absent refused the write

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class PluginKVFailure(click.ClickException):
    """A ``PluginKVError`` shown as one ``error: ...`` line on stderr."""

    exit_code = EXIT_ERROR

    def __init__(self, error: PluginKVError) -> None:
        # One line even when the engine's message spans several (settings errors do).
        super().__init__(" ".join(str(error).split()) or error.code)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class ConditionFailed(PluginKVFailure):
    """A ``VersionConflict``: ``--if-version`` or ``--if-absent`` refused the change."""

    exit_code = EXIT_CONFLICT


db_option = click.option(
    "--db",
    envvar="PLUGINKV_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="sqlite:///relative.db, sqlite:////absolute.db, a file path or "
    "postgresql://user@host/dbname "
    "[default: the database_url setting, sqlite:///pluginkv-data/pluginkv.db].",
)


def scope_options(func: F) -> F:
    """Add ``--db``, ``--workspace`` and ``--plugin`` to a command."""
    options = [
        db_option,
        click.option(
            "--workspace",
            envvar="PLUGINKV_WORKSPACE",
            show_envvar=True,
            required=True,
            help="Workspace id.",
        ),
        click.option(
            "--plugin",
            envvar="PLUGINKV_PLUGIN",
            show_envvar=True,
            required=True,
            metavar="AUTHOR/NAME",
            help="Plugin id, without a version.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextmanager
def engine_errors() -> Iterator[None]:
    """Engine errors in the block become the exits documented for them."""
    try:
        yield
    except VersionConflict as exc:
        raise ConditionFailed(exc) from None
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None


@contextmanager
def open_storage(db: str | None, workspace: str, plugin: str) -> Iterator[Storage]:
    """The scope's storage on an open store, closed afterwards; engine errors become exits."""
    with engine_errors():
        check_scope(workspace, plugin)  # before opening, so a typo creates no database
        with open_store(db) as store:
            yield store.storage(workspace=workspace, plugin=plugin)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pluginkv")
def main() -> None:
    """pluginkv: persistent, workspace-scoped key-value storage for plugins."""


@main.group()
def kv() -> None:
    """Read and write the keys of one plugin in one workspace."""


@kv.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option(
    "--file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Store the raw bytes of this file.",
)
@click.option("--ttl", type=float, metavar="SECONDS", help="Expire the entry after this long.")
@click.option("--if-version", type=int, metavar="N", help="Only replace the entry at version N.")
@click.option("--if-absent", is_flag=True, help="Only store if the key holds no value.")
@scope_options
def set_(
    key: str,
    value: str | None,
    file: Path | None,
    ttl: float | None,
    if_version: int | None,
    if_absent: bool,
    db: str | None,
    workspace: str,
    plugin: str,
) -> None:
    """Store a value under KEY.

    The value is VALUE encoded as UTF-8, the bytes of --file, or the raw bytes
    of stdin when VALUE is '-' or absent and stdin is not a terminal.
    """
    data = _value_bytes(value, file)
    with open_storage(db, workspace, plugin) as storage:
        storage.set(key, data, ttl=ttl, if_version=if_version, if_absent=if_absent)


def _value_bytes(value: str | None, file: Path | None) -> bytes:
    if file is not None:
        if value is not None:
            raise click.UsageError("give the value as VALUE or --file, not both")
        return file.read_bytes()
    if value is not None and value != "-":
        # surrogateescape gives back the exact bytes of an argument that was not UTF-8.
        return value.encode("utf-8", "surrogateescape")
    with click.open_file("-", "rb") as stdin:
        if value is None and stdin.isatty():
            raise click.UsageError("no value: give VALUE, --file PATH, or pipe it to stdin")
        data: bytes = stdin.read()
    return data


@kv.command("get")
@click.argument("key")
@scope_options
def get(key: str, db: str | None, workspace: str, plugin: str) -> None:
    """Write the value of KEY to stdout as raw bytes, without a newline.

    Exits 1 with a message on stderr when the key is absent or expired.
    """
    with open_storage(db, workspace, plugin) as storage:
        value = _found(key, storage.get(key))
    click.echo(value, nl=False)  # bytes go to the binary stdout, unchanged


def _found(key: str, answer: T | None) -> T:
    """``answer``, or exit 1 saying the key is not found."""
    if answer is None:
        click.echo(f"key {key!r} not found", err=True)
        raise click.exceptions.Exit(EXIT_FALSE)
    return answer


@kv.command("delete")
@click.argument("key")
@click.option("--if-version", type=int, metavar="N", help="Only delete the entry at version N.")
@scope_options
def delete(key: str, if_version: int | None, db: str | None, workspace: str, plugin: str) -> None:
    """Delete KEY; deleting an absent key succeeds silently."""
    with open_storage(db, workspace, plugin) as storage:
        storage.delete(key, if_version=if_version)


@kv.command("delete-prefix")
@click.argument("prefix", default="")
@click.option("--all", "everything", is_flag=True, help="Delete every key (PREFIX must be '').")
@scope_options
def delete_prefix(
    prefix: str, everything: bool, db: str | None, workspace: str, plugin: str
) -> None:
    """Delete every key starting with PREFIX and print how many held a value.

    An empty PREFIX (an unset shell variable, say) is refused unless --all is
    given: only --all empties the plugin's storage.
    """
    with open_storage(db, workspace, plugin) as storage:
        deleted = storage.delete_prefix(prefix, all=everything)
    click.echo(deleted)


@kv.command("exist")
@click.argument("key")
@scope_options
def exist(key: str, db: str | None, workspace: str, plugin: str) -> None:
    """Print 'true' and exit 0 if KEY holds a value, else print 'false' and exit 1."""
    with open_storage(db, workspace, plugin) as storage:
        found = storage.exist(key)
    click.echo("true" if found else "false")
    if not found:
        raise click.exceptions.Exit(EXIT_FALSE)


@kv.command("meta")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, times included.")
@scope_options
def meta(key: str, as_json: bool, db: str | None, workspace: str, plugin: str) -> None:
    """Print KEY's line as 'kv keys' prints it, without reading its value.

    Exits 1 with a message on stderr when the key is absent or expired.
    """
    with open_storage(db, workspace, plugin) as storage:
        found = _found(key, storage.get_meta(key))
    click.echo(json.dumps(found.as_dict()) if as_json else _key_line(found))


@kv.command("keys")
@click.argument("prefix", default="")
@click.option("--limit", type=int, default=100, show_default=True, help="Keys per page.")
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursors to the last key.")
@scope_options
def keys(
    prefix: str,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    db: str | None,
    workspace: str,
    plugin: str,
) -> None:
    """List the keys starting with PREFIX, in key order.

    One line per key: key, size, version and expiry (ISO 8601 UTC, or '-'),
    separated by tabs.  When more keys remain and --all is not given, the
    cursor of the next page is printed to stderr.
    """
    with open_storage(db, workspace, plugin) as storage:
        while True:
            page = storage.keys(prefix, limit=limit, cursor=cursor)
            for entry in page:
                click.echo(_key_line(entry))
            cursor = page.next_cursor
            if cursor is None or not all_pages:
                break
    if cursor is not None:
        click.echo(f"next page: --cursor {cursor}", err=True)


def _key_line(entry: EntryMeta) -> str:
    return f"{entry.key}\t{entry.size}\t{entry.version}\t{_expiry(entry.expires_at)}"


def _expiry(expires_at: float | None) -> str:
    """ISO 8601 UTC, ``-`` for none; past year 9999 (a row an older version let in), the number."""
    expires_at = shown_expiry(expires_at)
    if expires_at is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(expires_at, UTC)
    except (OverflowError, OSError, ValueError):
        return repr(expires_at)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@main.command("usage")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@scope_options
def usage(as_json: bool, db: str | None, workspace: str, plugin: str) -> None:
    """Print the bytes used (keys plus values), the live keys and the quota of the plugin."""
    with open_storage(db, workspace, plugin) as storage:
        used = storage.usage()
    if as_json:
        fields = {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
        click.echo(json.dumps(fields))
        return
    click.echo(f"bytes_used: {used.bytes_used} ({_human(used.bytes_used)})")
    click.echo(f"keys: {used.keys}")
    click.echo(f"quota_bytes: {used.quota_bytes} ({_human(used.quota_bytes)})")


@main.command("scopes")
@db_option
@click.option("--workspace", help="Only this workspace's plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def scopes(db: str | None, workspace: str | None, as_json: bool) -> None:
    """List every plugin in every workspace that has stored something, with its usage.

    One line each, tab-separated: workspace, plugin, live keys, bytes used and
    quota, by workspace then plugin; with --json, one object per line with the
    fields the admin API's /v1/admin/scopes gives.
    """
    with engine_errors():
        if workspace is not None:
            check_workspace(workspace)  # before opening, so a typo creates no database
        with open_store(db) as store:
            listed = store.scopes()
    for scope, used in listed:
        if workspace is not None and scope.workspace != workspace:
            continue
        fields = (scope.workspace, scope.plugin, used.keys, used.bytes_used, used.quota_bytes)
        if as_json:
            names = ("workspace", "plugin", "keys", "bytes_used", "quota_bytes")
            click.echo(json.dumps(dict(zip(names, fields, strict=True))))
        else:
            click.echo("\t".join(map(str, fields)))


def _human(size: int) -> str:
    """``1234`` -> ``1.2 KiB`` (binary units)."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if round(amount, 1) < 1024:
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} PiB"


# -- the service ---------------------------------------------------------------------------
def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        envvar="PLUGINKV_DATA_DIR",
        show_envvar=True,
        default="pluginkv-data",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the service keeps its database and token secret.",
    )(func)


def service_settings(data_dir: Path, db: str | None = None, **overrides: Any) -> Settings:
    """Settings of the local service: the database defaults to <data-dir>/pluginkv.db."""
    private_files.secure_data_dir(data_dir)  # before anything opens it: a store of an older version
    if db is None and "PLUGINKV_DATABASE_URL" not in os.environ:
        db = f"sqlite:///{(data_dir / 'pluginkv.db').resolve()}"
    if db is not None:
        overrides["database_url"] = db
    try:
        return load_settings(data_dir=str(data_dir), **overrides)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None


@main.command("serve")
@data_dir_option
@click.option(
    "--db",
    metavar="URL",
    help="Database URL, e.g. postgresql://user@host/dbname [default: <data-dir>/pluginkv.db].",
)
@click.option(
    "--host",
    envvar="PLUGINKV_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind.",
)
@click.option(
    "--port",
    envvar="PLUGINKV_PORT",
    type=int,
    default=8787,
    show_default=True,
    help="Port to bind.",
)
@click.option(
    "--debug-port",
    envvar="PLUGINKV_DEBUG_PORT",
    type=int,
    default=5003,
    show_default=True,
    help="Port remote-debug Dify plugins connect to (on PLUGINKV_DEBUG_HOST, 127.0.0.1).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Serve reads and refuse every write, e.g. while the store is exported "
    "[default: PLUGINKV_READ_ONLY].",
)
@click.option(
    "--log-level",
    envvar="PLUGINKV_LOG_LEVEL",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Least severe message logged, by the service and the plugin host.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="PLUGINKV_ACCESS_LOG",
    default=False,
    show_default=True,
    help="Log one line per HTTP request.",
)
def serve(
    data_dir: Path,
    db: str | None,
    host: str,
    port: int,
    debug_port: int,
    read_only: bool,
    log_level: str,
    access_log: bool,
) -> None:
    """Run the storage service (HTTP API under /v1) and the Dify plugin host until SIGTERM."""
    try:
        import uvicorn  # noqa: F401  (here only to fail with the install hint before opening)

        from .server.app import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the service needs the server extra: pip install 'pluginkv[server]' ({exc})"
        ) from None
    overrides: dict[str, Any] = {"host": host, "port": port, "debug_port": debug_port}
    overrides |= {"log_level": log_level, "access_log": access_log}
    if read_only:
        overrides["read_only"] = True
    settings = service_settings(data_dir, db, **overrides)
    # Opened here, not in the app's startup, so that a store that cannot open
    # (a database down, a read-only file that is missing or not migrated) is
    # one error line and exit 3, not uvicorn's startup traceback.  The app
    # closes it at shutdown: uvicorn ends the process by re-raising SIGTERM
    # once it has stopped, so nothing after uvicorn.run() would run.
    try:
        store = Store(settings)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    app = create_app(settings, store=store, listen_for_plugins=True, close_store=True)
    _run_service(app, settings, data_dir)


def _run_service(app: Any, settings: Settings, data_dir: Path) -> None:
    """Say where the service listens, then run it under uvicorn until SIGTERM or Ctrl-C."""
    import uvicorn

    from .server.listener_limits import ListenerLimits, limited_protocol, reserve_file_descriptors

    limits = ListenerLimits.from_settings(settings)
    try:
        reserve_file_descriptors(limits.max_connections)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    host, port = settings.host, settings.port
    database = redact_url(settings.database_url)
    click.echo(f"pluginkv {__version__}: data in {data_dir.resolve()} ({database})")
    click.echo(f"listening on http://{host}:{port}  (API under /v1, health at /healthz)")
    if settings.read_only:
        click.echo(
            f"read-only ({env_name('read_only')}=true): reads are served, every write is "
            "refused with 503 read_only"
        )
    click.echo(
        f"a token for a plugin: pluginkv token create --data-dir {data_dir} "
        "--workspace WS --plugin AUTHOR/NAME"
    )
    click.echo(
        f"remote-debug Dify plugins: {settings.debug_host}:{settings.debug_port}, with a key "
        f"from pluginkv debug-key create --data-dir {data_dir} --workspace WS"
    )
    # uvicorn's logging, plus the plugin host's (registrations, refusals, plugin logs).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    # The access log (its own logger, at INFO) is on or off by its switch alone.
    level = settings.log_level.upper()
    for name in ("uvicorn", "uvicorn.error"):
        log_config["loggers"][name]["level"] = level
    log_config["loggers"]["pluginkv"] = {"handlers": ["default"], "level": level}
    uvicorn.run(
        app,
        log_config=log_config,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with the limits on headers and connections it lacks.
        http=limited_protocol(limits),
        access_log=settings.access_log,
        timeout_keep_alive=settings.idle_timeout_seconds,
        timeout_graceful_shutdown=30,
    )


@main.group()
def token() -> None:
    """Create and revoke bearer tokens for the service of a local data directory."""


@token.command("create")
@data_dir_option
@click.option("--workspace", help="Workspace the token is for.")
@click.option("--plugin", metavar="AUTHOR/NAME", help="Plugin the token is for.")
@click.option("--ttl", type=float, metavar="SECONDS", help="Lifetime [default: 30 days].")
@click.option("--read-only", is_flag=True, help="The token may read but not write.")
@click.option("--admin", is_flag=True, help="An admin token for /v1/admin instead.")
def token_create(
    data_dir: Path,
    workspace: str | None,
    plugin: str | None,
    ttl: float | None,
    read_only: bool,
    admin: bool,
) -> None:
    """Print a token: for one (workspace, plugin), or with --admin for the admin API."""
    from .services.tokens import Tokens, load_secret

    if admin == (workspace is not None or plugin is not None):
        raise click.UsageError("give --workspace and --plugin, or --admin alone")
    if not admin and (workspace is None or plugin is None):
        raise click.UsageError("a scope token needs both --workspace and --plugin")
    settings = service_settings(data_dir)
    try:
        tokens = Tokens(load_secret(settings), default_ttl=settings.token_ttl_seconds)
        click.echo(
            tokens.issue(
                workspace=workspace, plugin=plugin, ttl=ttl, read_only=read_only, admin=admin
            )
        )
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None


@token.command("revoke")
@data_dir_option
@click.option(
    "--db",
    metavar="URL",
    help="Database URL of the service, e.g. postgresql://user@host/dbname "
    "[default: <data-dir>/pluginkv.db].",
)
@click.option("--workspace", required=True, help="Workspace whose tokens to revoke.")
@click.option(
    "--plugin", required=True, metavar="AUTHOR/NAME", help="Plugin whose tokens to revoke."
)
def token_revoke(data_dir: Path, db: str | None, workspace: str, plugin: str) -> None:
    """Revoke every token of one (workspace, plugin) created until now; later ones work."""
    settings = service_settings(data_dir, db)
    with engine_errors():
        check_scope(workspace, plugin)  # before opening, so a typo creates no database
        with Store(settings) as store:
            revoked_at = store.revoke_tokens(workspace=workspace, plugin=plugin)
    moment = datetime.fromtimestamp(revoked_at, UTC).isoformat(timespec="microseconds")
    click.echo(
        f"revoked the tokens of {plugin} in workspace {workspace} issued up to {moment}; "
        f"services on {redact_url(settings.database_url)} refuse them within "
        f"{settings.token_revocation_refresh_seconds:g} s "
        f"({env_name('token_revocation_refresh_seconds')}). Create a new token with: "
        f"pluginkv token create --workspace {workspace} --plugin {plugin}"
    )


# The Dify plugin host's and export/import's commands register themselves on ``main``.
from . import cli_host, cli_transfer  # noqa: E402, F401
