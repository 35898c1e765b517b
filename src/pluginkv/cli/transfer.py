"""``pluginkv export`` and ``pluginkv import``: a store to a JSON Lines file and back.

Registered on ``main`` in ``pluginkv.cli``.  They open the store as
the ``kv`` commands do (``--db`` or ``PLUGINKV_DATABASE_URL``); the work is
done by ``pluginkv.transfer``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import click

from ..errors import PluginKVError
from ..keys import check_scope, check_workspace
from ..store import load_settings, open_store
from ..transfer import ImportReport, export_store, import_lines
from .common import (
    EXIT_ERROR,
    CommandFailed,
    PluginKVFailure,
    db_option,
    engine_errors,
    open_existing_store,
)
from .progress import progress

__all__ = ["export", "import_"]


@click.command("export")
@db_option
@click.option("--workspace", help="Export only this workspace.")
@click.option("--plugin", metavar="AUTHOR/NAME", help="Export only this plugin (with --workspace).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (replaced only once the export is complete) instead of stdout.",
)
def export(db: str | None, workspace: str | None, plugin: str | None, output: Path | None) -> None:
    """Write every live entry of the store as JSON Lines (see docs/cli.md for the format).

    Expired entries are left out.  Each plugin's data in each workspace is
    read as one consistent snapshot; stop writes (or make the service
    read-only) for a snapshot of the whole store.  A summary goes to stderr.
    """
    if plugin is not None and workspace is None:
        raise click.UsageError("--plugin needs --workspace")
    with engine_errors():
        # Checked before opening, so a typo creates no database.
        if plugin is not None:
            check_scope(workspace, plugin)
        elif workspace is not None:
            check_workspace(workspace)
        with open_existing_store(db or load_settings().database_url) as store:
            total = sum(
                used.bytes_used
                for scope, used in store.scopes()
                if workspace in (None, scope.workspace) and plugin in (None, scope.plugin)
            )
            with _destination(output) as out, progress("exporting", total) as advance:
                report = export_store(
                    store, out, workspace=workspace, plugin=plugin, on_entry=advance
                )
    click.echo(
        f"exported {report.scopes} scopes, {report.entries} keys, {report.bytes} bytes", err=True
    )


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[IO[bytes]]:
    """stdout, or a file written beside ``output`` and renamed over it once complete."""
    if output is None:
        with click.open_file("-", "wb") as stdout:
            yield stdout
        return
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandFailed(f"cannot write {output}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@click.command("import")
@click.argument("file", type=click.File("rb"))
@db_option
@click.option(
    "--replace",
    is_flag=True,
    help="Replace keys that already hold a value instead of refusing their scope.",
)
def import_(file: IO[bytes], db: str | None, replace: bool) -> None:
    """Load FILE (an export; '-' for stdin) into the store.

    Each plugin's data in each workspace is imported whole or not at all.  A
    scope in which a key of the file already holds another value is refused
    unless --replace; so is one the store's quota or value limit would refuse.
    Versions are kept in a scope that never stored anything, else shifted
    above the ones it gave out: a version is never given out twice.
    Prints what was imported and skipped; exits 3 if any scope was refused
    or the file is malformed.
    """
    report = ImportReport()
    try:
        with open_store(db) as store, progress("importing", _size(file)) as advance:
            lines = (_counted(line, advance) for line in file)
            import_lines(store, lines, replace=replace, report=report)
    except PluginKVError as exc:
        _print_report(report)
        raise PluginKVFailure(exc) from None
    _print_report(report)
    if report.refused:
        raise click.exceptions.Exit(EXIT_ERROR)


def _size(file: IO[bytes]) -> int | None:
    """The size of a regular file; None for a pipe, whose end is unknown."""
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _counted(line: bytes, advance: Callable[[int], None]) -> bytes:
    advance(len(line))
    return line


def _print_report(report: ImportReport) -> None:
    click.echo(f"imported {report.scopes} scopes, {report.entries} keys, {report.bytes} bytes")
    if report.expired:
        click.echo(f"skipped {report.expired} entries expired before the import")
    if report.unchanged:
        click.echo(f"left {report.unchanged} entries as they were: the store held them already")
    for _, error in report.refused:  # each message names its scope
        click.echo(f"error: {' '.join(str(error).split())}", err=True)
