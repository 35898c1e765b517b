"""What every ``pluginkv`` command shares: exit codes, options, and engine errors as exits.

Exit codes (documented in ``docs/cli.md``): 0 success; 1 absent key (``kv get``)
or false (``kv exist``); 2 usage error (click's); 3 pluginkv refused or failed
(any ``PluginKVError``); 4 a ``--if-version`` / ``--if-absent`` condition failed;
5 the service could not be reached.

Which store a command works on is said once for all of them (``scope_options``):
``--db`` opens a database directly, and only one that exists; otherwise the
command asks the running service at ``--url`` with ``--token``, or with a token
it signs with the secret ``pluginkv serve`` keeps in its data directory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from .. import private_files
from ..client.errors import ServiceUnreachable
from ..config import Settings
from ..errors import InvalidArgument, PluginKVError, VersionConflict
from ..keys import check_scope
from ..storage import Storage
from ..store import Store, load_settings, sqlite_path

if TYPE_CHECKING:
    from ..services.tokens import Tokens

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_FALSE",
    "EXIT_UNREACHABLE",
    "CommandFailed",
    "ConditionFailed",
    "PluginKVFailure",
    "data_dir_option",
    "db_option",
    "engine_errors",
    "open_storage",
    "scope_options",
    "service_settings",
]

EXIT_FALSE = 1  # kv get: the key is absent; kv exist: false
# Each error declares its exit code (errors.py): a failed condition its own.
EXIT_ERROR = PluginKVError.exit_code  # any PluginKVError other than a failed condition
EXIT_CONFLICT = VersionConflict.exit_code  # --if-version or --if-absent refused the write
EXIT_UNREACHABLE = 5  # no answer from the service at --url

_CLI_TOKEN_TTL = 900  # seconds: a token the CLI signs lives for one command's worth

F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """A failure shown as one ``error: ...`` line on stderr, exit 3."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        # One line even when the message spans several (settings errors do).
        super().__init__(" ".join(message.split()))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class PluginKVFailure(CommandFailed):
    """A ``PluginKVError`` as one ``error: ...`` line."""

    def __init__(self, error: PluginKVError) -> None:
        super().__init__(str(error).strip() or error.code)


class ConditionFailed(PluginKVFailure):
    """A ``VersionConflict``: ``--if-version`` or ``--if-absent`` refused the change."""

    exit_code = EXIT_CONFLICT


class Unreachable(PluginKVFailure):
    """The service gave no answer at all."""

    exit_code = EXIT_UNREACHABLE

    def format_message(self) -> str:
        hint = "is pluginkv serve running? --url or PLUGINKV_URL names it"
        return f"{super().format_message()} ({hint})"


db_option = click.option(
    "--db",
    envvar="PLUGINKV_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="Open this database directly instead of asking the service: "
    "sqlite:///relative.db, sqlite:////absolute.db, a file path or "
    "postgresql://user@host/dbname.  It must exist (pluginkv init creates one).",
)

url_option = click.option(
    "--url",
    envvar="PLUGINKV_URL",
    show_envvar=True,
    metavar="URL",
    help="The running service [default: http://<host setting>:<port setting>, "
    "http://127.0.0.1:8787].",
)

token_option = click.option(
    "--token",
    envvar="PLUGINKV_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="Bearer token for the service [default: one signed with the token secret in --data-dir].",
)


@dataclass(frozen=True, slots=True)
class Target:
    """Which store a command works on: a database (``db``), else the service at ``url``."""

    db: str | None
    url: str | None
    token: str | None
    data_dir: Path


def target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--db``, ``--url``, ``--token`` and ``--data-dir``, passed as ``target``."""

    @functools.wraps(func)
    def with_target(
        *args: Any,
        db: str | None,
        url: str | None,
        token: str | None,
        data_dir: Path,
        **kwargs: Any,
    ) -> Any:
        return func(*args, target=Target(db, url, token, data_dir), **kwargs)

    for option in (data_dir_option, token_option, url_option, db_option):
        with_target = option(with_target)
    return with_target


def scope_options(func: F) -> F:
    """Add the target options (``target_options``), ``--workspace`` and ``--plugin``."""
    options = [
        target_options,
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
    except ServiceUnreachable as exc:  # a client-side error: the service never answered
        raise Unreachable(exc) from None
    except PluginKVError as exc:
        failure = ConditionFailed if exc.exit_code == EXIT_CONFLICT else PluginKVFailure
        raise failure(exc) from None


@contextmanager
def open_storage(target: Target, workspace: str, plugin: str) -> Iterator[Storage]:
    """The scope's storage, closed afterwards; engine errors become exits.

    On the database of ``--db`` (one that exists), else on the service.
    """
    with engine_errors():
        check_scope(workspace, plugin)  # before opening, so a typo creates no database
        if target.db is not None:
            with open_existing_store(target.db) as store:
                yield store.storage(workspace=workspace, plugin=plugin)
            return
        from ..client import RemoteStorage

        url = service_url(target.url)
        token = target.token
        if token is None:
            tokens = signing_tokens(target.data_dir, token_option=True)
            token = tokens.issue(workspace=workspace, plugin=plugin)
        with RemoteStorage(url, token, retries=0) as remote:
            yield cast(Storage, remote)  # the same API, over HTTP


def open_existing_store(db: str) -> Store:
    """The store at ``db``, refusing to create one: a typo must not become an empty store."""
    settings = load_settings(database_url=db)
    path = sqlite_path(settings.database_url)
    if path is not None and not path.is_file():
        raise InvalidArgument(
            f"no database at {path}: only pluginkv serve, pluginkv import and "
            f"pluginkv init --db {db} create one"
        )
    return Store(settings)


def service_url(url: str | None) -> str:
    """``--url``, else the service of the host and port settings, checked."""
    from ..client._wire import parse_service_url

    if url is None:
        settings = load_settings()
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        url = f"http://{host}:{settings.port}"
    return parse_service_url(url).url


def signing_tokens(
    data_dir: Path, ttl: int = _CLI_TOKEN_TTL, *, token_option: bool = False
) -> Tokens:
    """Tokens signed with the secret of the service of ``data_dir``, which must have one.

    Never a new secret: a service that signs with another one refuses its tokens, so
    a command run from the wrong directory says so instead.
    """
    from ..services.tokens import SECRET_FILE, Tokens, load_secret

    settings = service_settings(data_dir, create=False)
    if settings.token_secret is None and not (data_dir / SECRET_FILE).is_file():
        raise InvalidArgument(
            f"no token secret in {data_dir.resolve()}: run this where pluginkv serve runs, "
            "or give its --data-dir (PLUGINKV_DATA_DIR)"
            + (", or a --token (PLUGINKV_TOKEN)" if token_option else "")
        )
    return Tokens(load_secret(settings), default_ttl=ttl)


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


def service_settings(
    data_dir: Path, db: str | None = None, *, create: bool = True, **overrides: Any
) -> Settings:
    """Settings of the local service: the database defaults to <data-dir>/pluginkv.db.

    Without ``create``, a data directory that does not exist is left so.
    """
    if create or data_dir.exists():
        # Before anything opens it: a store of an older version.
        try:
            private_files.secure_data_dir(data_dir)
        except OSError as exc:
            raise CommandFailed(f"cannot use the data directory {data_dir}: {exc}") from None
    if db is None and "PLUGINKV_DATABASE_URL" not in os.environ:
        db = f"sqlite:///{(data_dir / 'pluginkv.db').resolve()}"
    if db is not None:
        overrides["database_url"] = db
    try:
        return load_settings(data_dir=str(data_dir), **overrides)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
