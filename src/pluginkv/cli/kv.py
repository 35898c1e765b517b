"""The storage verbs of one plugin in one workspace (``kv ...``), ``usage`` and ``scopes``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from ..keys import check_workspace
from ..models import EntryMeta, shown_expiry
from ..store import open_store
from .common import (
    EXIT_FALSE,
    db_option,
    engine_errors,
    open_storage,
    scope_options,
)

__all__ = ["kv", "scopes", "usage"]

T = TypeVar("T")


@click.group()
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


@click.command("usage")
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


@click.command("scopes")
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
