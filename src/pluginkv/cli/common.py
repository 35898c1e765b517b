"""What every ``pluginkv`` command shares: exit codes, options, and engine errors as exits.

Exit codes (documented in ``docs/cli.md``): 0 success; 1 absent key (``kv get``)
or false (``kv exist``); 2 usage error (click's); 3 pluginkv refused or failed
(any ``PluginKVError``); 4 a ``--if-version`` / ``--if-absent`` condition failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from .. import private_files
from ..config import Settings
from ..errors import PluginKVError, VersionConflict
from ..keys import check_scope
from ..storage import Storage
from ..store import load_settings, open_store

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_FALSE",
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

F = TypeVar("F", bound=Callable[..., Any])


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
    except PluginKVError as exc:
        failure = ConditionFailed if exc.exit_code == EXIT_CONFLICT else PluginKVFailure
        raise failure(exc) from None


@contextmanager
def open_storage(db: str | None, workspace: str, plugin: str) -> Iterator[Storage]:
    """The scope's storage on an open store, closed afterwards; engine errors become exits."""
    with engine_errors():
        check_scope(workspace, plugin)  # before opening, so a typo creates no database
        with open_store(db) as store:
            yield store.storage(workspace=workspace, plugin=plugin)


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
