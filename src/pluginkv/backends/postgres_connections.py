"""PostgreSQL connections as the backend opens them: their options, their errors, their URL.

Kept apart from ``postgres.py`` so that the backend's module holds its
transactions and calls only.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper


class Connection(psycopg.Connection[tuple[Any, ...]]):
    """A pooled connection that keeps one cursor for the single-statement calls.

    Reusing a cursor saves a fifth of the client time of a small ``get``;
    a connection is used by one thread at a time, and so is its cursor.
    """

    kept: psycopg.Cursor[tuple[Any, ...]]


def _configure(conn: Connection) -> None:
    # Every int as int8: one prepared statement per query, not one per
    # combination of int2/int4/int8 that small and large numbers would pick.
    conn.adapters.register_dumper(int, Int8Dumper)
    conn.adapters.register_dumper(int, Int8BinaryDumper)
    conn.kept = conn.cursor(binary=True)  # binary results: bytea arrives as bytes, not hex


def describe_url(url: str) -> str:
    """``host:port/dbname`` of a database URL, for messages (never the password).

    A URL of several hosts (``postgresql://h1:p1,h2:p2/db``: the primary is
    whichever of them accepts writes) reads ``h1:p1,h2:p2/db``.
    """
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unparsable URL)"
    hosts = str(params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports *= len(hosts)  # libpq: one port stands for every host
    pairs = zip(hosts, ports, strict=False)  # unequal lists: libpq refuses the URL anyway
    where = ",".join(f"{host or 'localhost'}:{port or '5432'}" for host, port in pairs)
    return f"{where}/{params.get('dbname') or params.get('user') or ''}"


def _left_the_primary(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection's server no longer takes writes.

    After a failover (or a switchover) the old primary is a standby, or on
    its way to being one: a connection to it refuses writes, or is ended by
    the shutdown that demotes it.  Every connection of the pool may point at
    it, so they are all replaced; new ones go to whichever host of the URL
    takes writes (``target_session_attrs=read-write``).
    """
    return isinstance(
        exc,
        (
            psycopg.errors.ReadOnlySqlTransaction,
            psycopg.errors.AdminShutdown,
            psycopg.errors.CannotConnectNow,
        ),
    )


def _session_options(given: dict[str, Any], statement_timeout: float) -> dict[str, str]:
    """libpq ``options`` with the statement timeout added to any the URL has."""
    if statement_timeout <= 0:
        return {}
    ours = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
    theirs = given.get("options")
    return {"options": f"{theirs} {ours}" if theirs else ours}


def _liveness(given: dict[str, Any], tcp_timeout: int) -> dict[str, int]:
    """Keepalives and a TCP user timeout, so a silent server or network is noticed.

    Without them a connection whose server vanished (a partition, a host that
    died) hangs until the kernel gives up, which takes minutes: idle ones are
    probed after half of ``tcp_timeout`` and given up three probes later, and
    data left unacknowledged for ``tcp_timeout`` ends the connection.  What
    the URL sets itself is kept.
    """
    wanted = {
        "keepalives": 1,
        "keepalives_idle": max(1, tcp_timeout // 2),
        "keepalives_interval": max(1, tcp_timeout // 6),
        "keepalives_count": 3,
        "tcp_user_timeout": tcp_timeout * 1000,
    }
    return {name: value for name, value in wanted.items() if name not in given}


def _detach(conn: Connection) -> None:
    """Point this process's copy of an inherited connection's socket at /dev/null."""
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return  # already closed
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
