"""``kv watch`` and ``kv txn``: following a scope's changes, committing many keys at once.

Commands of the ``kv`` group, added to it in ``cli/__init__.py``.

Both work on the database of ``--db`` through the engine, or on the service
through the SDK, whose ``watch()`` and ``atomic()`` are the engine's.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from ..api import CommitBuilder
from ..models import Change
from .common import EXIT_CONFLICT, Target, open_storage, scope_options

__all__ = ["txn", "watch"]


@click.command("watch")
@click.argument("prefix", default="")
@click.option(
    "--since",
    type=int,
    metavar="N",
    help="Start after change N (0: every change kept) [default: from now on].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change (JSON Lines).")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N changes.")
@scope_options
def watch(
    prefix: str,
    since: int | None,
    as_json: bool,
    count: int | None,
    target: Target,
    workspace: str,
    plugin: str,
) -> None:
    """Print each change of a key starting with PREFIX as it is committed, until Ctrl-C.

    One line per change: sequence number, kind (set, delete, expire), key and
    version, separated by spaces; with --json, one object per line.  Exits 3
    when --since is older than the change log keeps (ChangesExpired).

    Once started, it outlives a restart of the service: while the service is
    unreachable or answers 503 it tries again with backoff, saying so on
    stderr, then prints every change it missed, each once.
    """
    printed = 0
    try:
        with _outages_on_stderr(), open_storage(target, workspace, plugin) as storage:
            for change in storage.watch(prefix, since=since):
                click.echo(_change_json(change) if as_json else _change_line(change))
                printed += 1
                if printed == count:
                    break
    except KeyboardInterrupt:  # the way to stop it: no traceback, no "Aborted!"
        return


@contextmanager
def _outages_on_stderr() -> Iterator[None]:
    """The client's notes of a watch losing the service and finding it again, as lines
    on stderr: a watch that waits on a service that is down must not look idle."""
    client_log = logging.getLogger("pluginkv.client")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    client_log.addHandler(handler)
    try:
        yield
    finally:
        client_log.removeHandler(handler)


def _change_line(change: Change) -> str:
    return f"{change.seq} {change.kind} {change.key} {change.version}"


def _change_json(change: Change) -> str:
    fields = {"seq": change.seq, "key": change.key, "kind": change.kind}
    return json.dumps({**fields, "version": change.version})


@click.command("txn")
@click.argument("file", type=click.File("rb"))
@scope_options
def txn(file: IO[bytes], target: Target, workspace: str, plugin: str) -> None:
    """Commit the checks and operations of FILE ('-': stdin) all or nothing.

    FILE is one JSON object: {"checks": [{"key": K, "version": N or null}],
    "operations": [{"op": "set", "key": K, "value": {"text": T} or {"base64":
    B}, "ttl": S, "metadata": {...}, "content_type": C}, {"op": "delete",
    "key": K}, {"op": "incr", "key": K, "delta": N}]}.  Prints the result as
    one JSON object; exits 4 when a check failed (nothing changed then).
    """
    request = _txn_request(file.read())
    with open_storage(target, workspace, plugin) as storage:
        result = _build(storage.atomic(), request).commit()
    if not result.ok:
        click.echo(json.dumps({"ok": False, "failed": result.failed}))
        click.echo(f"check failed: {', '.join(result.failed)}; nothing changed", err=True)
        raise click.exceptions.Exit(EXIT_CONFLICT)
    click.echo(json.dumps({"ok": True, "versions": result.versions, "counters": result.counters}))


_OPERATION_FIELDS = {
    "set": ({"op", "key", "value"}, {"ttl", "metadata", "content_type"}),
    "delete": ({"op", "key"}, set()),
    "incr": ({"op", "key"}, {"delta"}),
}


def _txn_request(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """The JSON of ``kv txn``, its shape checked (the commit checks the values)."""
    try:
        request = json.loads(data)
    except ValueError as exc:
        raise click.UsageError(f"the transaction is not JSON: {exc}") from None
    if not isinstance(request, dict) or not set(request) <= {"checks", "operations"}:
        raise click.UsageError('the transaction must be an object of "checks" and "operations"')
    checks, operations = request.get("checks", []), request.get("operations", [])
    if not isinstance(checks, list) or not isinstance(operations, list):
        raise click.UsageError('"checks" and "operations" must be lists')
    for number, check in enumerate(checks):
        if not isinstance(check, dict) or set(check) != {"key", "version"}:
            raise click.UsageError(f'checks[{number}] must be {{"key": K, "version": N or null}}')
    for number, operation in enumerate(operations):
        kind = operation.get("op") if isinstance(operation, dict) else None
        if kind not in _OPERATION_FIELDS:
            raise click.UsageError(f'operations[{number}]: "op" must be set, delete or incr')
        required, optional = _OPERATION_FIELDS[kind]
        if not required <= set(operation) <= required | optional:
            fields = ", ".join(sorted(required | optional))
            raise click.UsageError(f"operations[{number}] ({kind}) takes the fields {fields}")
        if kind == "set":
            operation["value"] = _value(number, operation["value"])
    return {"checks": checks, "operations": operations}


def _build(commit: CommitBuilder, request: dict[str, list[dict[str, Any]]]) -> CommitBuilder:
    for check in request["checks"]:
        commit.check(check["key"], version=check["version"])
    for operation in request["operations"]:
        if operation["op"] == "set":
            commit.set(
                operation["key"],
                operation["value"],
                ttl=operation.get("ttl"),
                metadata=operation.get("metadata"),
                content_type=operation.get("content_type"),
            )
        elif operation["op"] == "delete":
            commit.delete(operation["key"])
        else:
            commit.incr(operation["key"], operation.get("delta", 1))
    return commit


def _value(number: int, value: Any) -> bytes:
    if isinstance(value, dict) and set(value) == {"text"} and isinstance(value["text"], str):
        return value["text"].encode("utf-8")
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except binascii.Error as exc:
            raise click.UsageError(f"operations[{number}]: bad base64: {exc}") from None
    raise click.UsageError(
        f'operations[{number}]: "value" must be {{"text": T}} or {{"base64": B}}'
    )
