"""The storage verbs of one plugin in one workspace (``kv ...``), ``usage`` and ``scopes``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from ..keys import check_workspace
from ..models import EntryMeta, shown_expiry
from .common import (
    EXIT_FALSE,
    Target,
    engine_errors,
    open_existing_store,
    open_storage,
    scope_options,
    service_url,
    signing_tokens,
    target_options,
)

__all__ = ["kv", "scopes", "usage"]

T = TypeVar("T")


class _KVGroup(click.Group):
    """``kv list`` is ``kv keys``, the name other key-value tools give it."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, "keys" if cmd_name == "list" else cmd_name)


@click.group(cls=_KVGroup)
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
@click.option("--metadata", metavar="JSON", help="Keep this JSON object with the value.")
@click.option("--content-type", metavar="TYPE", help="How to read the value, e.g. text/plain.")
@scope_options
def set_(
    key: str,
    value: str | None,
    file: Path | None,
    ttl: float | None,
    if_version: int | None,
    if_absent: bool,
    metadata: str | None,
    content_type: str | None,
    target: Target,
    workspace: str,
    plugin: str,
) -> None:
    """Store a value under KEY.

    The value is VALUE encoded as UTF-8, the bytes of --file, or the raw bytes
    of stdin when VALUE is '-' or absent and stdin is not a terminal.
    """
    meta = _metadata(metadata)
    data = _value_bytes(value, file)
    with open_storage(target, workspace, plugin) as storage:
        storage.set(
            key,
            data,
            ttl=ttl,
            if_version=if_version,
            if_absent=if_absent,
            metadata=meta,
            content_type=content_type,
        )


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    if not isinstance(found, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--metadata")
    return found


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
def get(key: str, target: Target, workspace: str, plugin: str) -> None:
    """Write the value of KEY to stdout as raw bytes, without a newline.

    Exits 1 with a message on stderr when the key is absent or expired.
    """
    with open_storage(target, workspace, plugin) as storage:
        value = _found(key, storage.get(key))
    click.echo(value, nl=False)  # bytes go to the binary stdout, unchanged


def _found(key: str, answer: T | None) -> T:
    """``answer``, or exit 1 saying the key is not found."""
    if answer is None:
        click.echo(f"key {key!r} not found", err=True)
        raise click.exceptions.Exit(EXIT_FALSE)
    return answer


@kv.command("delete")
@click.argument("key", required=False)
@click.option("--if-version", type=int, metavar="N", help="Only delete the entry at version N.")
@click.option("--prefix", metavar="PREFIX", help="Delete every key starting with PREFIX.")
@click.option("--all", "everything", is_flag=True, help="Delete every key of the plugin.")
@scope_options
def delete(
    key: str | None,
    if_version: int | None,
    prefix: str | None,
    everything: bool,
    target: Target,
    workspace: str,
    plugin: str,
) -> None:
    """Delete KEY (an absent key succeeds silently), or every key under --prefix.

    With --prefix (or --all) it prints how many keys held a value.  An empty
    --prefix (an unset shell variable, say) is refused: only --all empties the
    plugin's storage.
    """
    if (key is not None) + (prefix is not None) + everything != 1:
        raise click.UsageError("give KEY, --prefix PREFIX or --all (one of them)")
    if if_version is not None and key is None:
        raise click.UsageError("--if-version goes with KEY")
    with open_storage(target, workspace, plugin) as storage:
        if key is not None:
            storage.delete(key, if_version=if_version)
            return
        deleted = storage.delete_prefix(prefix or "", all=everything)
    click.echo(deleted)


@kv.command("delete-prefix")
@click.argument("prefix", default="")
@click.option("--all", "everything", is_flag=True, help="Delete every key (PREFIX must be '').")
@scope_options
def delete_prefix(
    prefix: str, everything: bool, target: Target, workspace: str, plugin: str
) -> None:
    """The same as 'kv delete --prefix PREFIX' (or '--all'), kept for scripts."""
    with open_storage(target, workspace, plugin) as storage:
        deleted = storage.delete_prefix(prefix, all=everything)
    click.echo(deleted)


@kv.command("incr")
@click.argument("key")
@click.argument("delta", type=int, default=1)
@scope_options
def incr(key: str, delta: int, target: Target, workspace: str, plugin: str) -> None:
    """Add DELTA (default 1, may be negative) to the counter KEY and print its new value.

    An absent key counts from 0; a key holding anything but a counter is refused.
    """
    with open_storage(target, workspace, plugin) as storage:
        click.echo(storage.incr(key, delta))


@kv.command("set-many")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--ttl", type=float, metavar="SECONDS", help="Expire the entries after this long.")
@scope_options
def set_many(
    file: IO[bytes], ttl: float | None, target: Target, workspace: str, plugin: str
) -> None:
    """Store the entries of FILE (JSON Lines; '-', the default, is stdin) in one transaction.

    Each line is {"key": K, "value": TEXT} or {"key": K, "base64": B64}: what
    'kv get-many' prints.  Prints one {"key": K, "version": N} line per entry.
    """
    entries = dict(_batch_lines(file))
    with open_storage(target, workspace, plugin) as storage:
        versions = storage.set_many(entries, ttl=ttl)
    for key, version in versions.items():
        click.echo(json.dumps({"key": key, "version": version}))


def _batch_lines(file: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise ValueError("not an object with a string key")
            if set(item) == {"key", "value"} and isinstance(item["value"], str):
                yield item["key"], item["value"].encode()
            elif set(item) == {"key", "base64"} and isinstance(item["base64"], str):
                yield item["key"], base64.b64decode(item["base64"], validate=True)
            else:
                raise ValueError('fields must be "key" and "value" (text) or "base64"')
        except (ValueError, binascii.Error) as exc:
            raise click.UsageError(f"line {number}: {exc}") from None


@kv.command("get-many")
@click.argument("keys", nargs=-1)
@scope_options
def get_many(keys: tuple[str, ...], target: Target, workspace: str, plugin: str) -> None:
    """Print KEYS (or the keys on stdin, one a line) that hold a value, as JSON Lines.

    One {"key": K, "value": TEXT} line per key, {"key": K, "base64": B64} for
    a value that is not UTF-8; absent keys are left out.
    """
    if not keys:
        with click.open_file("-", "r") as stdin:
            keys = tuple(line.rstrip("\n") for line in stdin if line.strip())
    with open_storage(target, workspace, plugin) as storage:
        found = storage.get_many(keys)
    for key, value in found.items():
        try:
            click.echo(json.dumps({"key": key, "value": value.decode()}))
        except UnicodeDecodeError:
            click.echo(json.dumps({"key": key, "base64": base64.b64encode(value).decode()}))


@kv.command("exist")
@click.argument("key")
@scope_options
def exist(key: str, target: Target, workspace: str, plugin: str) -> None:
    """Print 'true' and exit 0 if KEY holds a value, else print 'false' and exit 1."""
    with open_storage(target, workspace, plugin) as storage:
        found = storage.exist(key)
    click.echo("true" if found else "false")
    if not found:
        raise click.exceptions.Exit(EXIT_FALSE)


@kv.command("meta")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, times included.")
@scope_options
def meta(key: str, as_json: bool, target: Target, workspace: str, plugin: str) -> None:
    """Print KEY's line as 'kv keys' prints it, without reading its value.

    Then 'content_type: TYPE' and 'metadata: JSON' lines when the entry has
    them.  Exits 1 with a message on stderr when the key is absent or expired.
    """
    with open_storage(target, workspace, plugin) as storage:
        found = _found(key, storage.get_meta(key))
    if as_json:
        click.echo(_entry_json(found))
        return
    click.echo(_key_line(found))
    if found.content_type is not None:
        click.echo(f"content_type: {found.content_type}")
    if found.metadata is not None:
        click.echo(f"metadata: {json.dumps(found.metadata, ensure_ascii=False)}")


def _entry_json(entry: EntryMeta) -> str:
    """An entry as one JSON object: its fields, metadata and content type (``null``: none)."""
    extras = {"metadata": entry.metadata, "content_type": entry.content_type}
    return json.dumps({**entry.as_dict(), **extras})


@kv.command("keys")
@click.argument("prefix", default="")
@click.option("--limit", type=int, default=100, show_default=True, help="Keys per page.")
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursors to the last key.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key, times included.")
@scope_options
def keys(
    prefix: str,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    as_json: bool,
    target: Target,
    workspace: str,
    plugin: str,
) -> None:
    """List the keys starting with PREFIX, in key order (also: kv list).

    A header line, then one line per key: key, size, version and expiry
    (ISO 8601 UTC, or '-'), separated by tabs; with --json, one object per
    key and no header.  When more keys remain and --all is not given, the
    cursor of the next page is printed to stderr.
    """
    if not as_json:
        click.echo(KEYS_HEADER)
    with open_storage(target, workspace, plugin) as storage:
        while True:
            page = storage.keys(prefix, limit=limit, cursor=cursor)
            for entry in page:
                click.echo(_entry_json(entry) if as_json else _key_line(entry))
            cursor = page.next_cursor
            if cursor is None or not all_pages:
                break
    if cursor is not None:
        click.echo(f"next page: --cursor {cursor}", err=True)


KEYS_HEADER = "KEY\tSIZE\tVERSION\tEXPIRES"


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
def usage(as_json: bool, target: Target, workspace: str, plugin: str) -> None:
    """Print the bytes used (keys plus values), the live keys and the quota of the plugin."""
    with open_storage(target, workspace, plugin) as storage:
        used = storage.usage()
    if as_json:
        fields = {"bytes_used": used.bytes_used, "keys": used.keys, "quota_bytes": used.quota_bytes}
        click.echo(json.dumps(fields))
        return
    click.echo(f"bytes_used: {used.bytes_used} ({_human(used.bytes_used)})")
    click.echo(f"keys: {used.keys}")
    click.echo(f"quota_bytes: {used.quota_bytes} ({_human(used.quota_bytes)})")


@click.command("scopes")
@target_options
@click.option("--workspace", help="Only this workspace's plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def scopes(target: Target, workspace: str | None, as_json: bool) -> None:
    """List every plugin in every workspace that has stored something, with its usage.

    A header line, then one line each, tab-separated: workspace, plugin, live
    keys, bytes used and quota, by workspace then plugin; with --json, one
    object per line with the fields the admin API's /v1/admin/scopes gives.
    """
    names = ("workspace", "plugin", "keys", "bytes_used", "quota_bytes")
    with engine_errors():
        if workspace is not None:
            check_workspace(workspace)  # before opening, so a typo creates no database
        listed = _scopes(target)
    if not as_json:
        click.echo("\t".join(name.upper() for name in names))
    for fields in listed:
        if workspace is not None and fields["workspace"] != workspace:
            continue
        if as_json:
            click.echo(json.dumps({name: fields[name] for name in names}))
        else:
            click.echo("\t".join(str(fields[name]) for name in names))


def _scopes(target: Target) -> list[dict[str, Any]]:
    """The scopes as /v1/admin/scopes lists them, from the database or from the service."""
    if target.db is None:
        from ..client.admin import AdminClient

        url = service_url(target.url)
        token = target.token or signing_tokens(target.data_dir, token_option=True).issue(admin=True)
        answer = AdminClient(url, token).call("GET", "/v1/admin/scopes")
        listed: list[dict[str, Any]] = answer["scopes"]
        return listed
    with open_existing_store(target.db) as store:
        return [
            {
                "workspace": scope.workspace,
                "plugin": scope.plugin,
                "keys": used.keys,
                "bytes_used": used.bytes_used,
                "quota_bytes": used.quota_bytes,
            }
            for scope, used in store.scopes()
        ]


def _human(size: int) -> str:
    """``1234`` -> ``1.2 KiB`` (binary units)."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if round(amount, 1) < 1024:
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} PiB"
