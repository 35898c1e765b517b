"""The PostgreSQL server the tests run against, and a database of each test run's own.

The server is ``PLUGINKV_TEST_POSTGRES_URL`` (a ``postgresql://`` URL of a
database the tests may connect to and create databases from), else the local
one on 127.0.0.1:5432 as ``postgres``, started with ``pg_ctlcluster`` if it is
down.  Each test run creates ``pluginkv_test_<pid>_<random>`` and drops it at
the end, so runs never see each other's data.  Without a server the tests
skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from pluginkv import Store

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def server_url() -> str:
    return os.environ.get("PLUGINKV_TEST_POSTGRES_URL") or LOCAL_URL


def with_database(url: str, dbname: str, **query: str) -> str:
    """``url`` naming another database (and, optionally, other query parameters)."""
    parts = urlsplit(url)
    extra = "&".join(f"{name}={value}" for name, value in query.items())
    joined = "&".join(part for part in (parts.query, extra) if part)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, joined, ""))


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under ``CI=true``, where PostgreSQL must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")


def connect(url: str, **kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5, **kwargs)


def start_local_cluster() -> str:
    """Start the local cluster if it is down; what happened, for a skip message."""
    if shutil.which(LOCAL_CLUSTER[0]) is None:
        return "pg_ctlcluster is not installed"
    result = subprocess.run(
        [*LOCAL_CLUSTER, "start"], capture_output=True, text=True, timeout=60, check=False
    )
    return (result.stdout + result.stderr).strip() or f"pg_ctlcluster exited {result.returncode}"


def wait_until_reachable(url: str, seconds: float) -> str | None:
    """``None`` once a connection works, or the last error after ``seconds``."""
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            connect(url).close()
            return None
        except psycopg.Error as exc:
            if time.monotonic() > deadline:
                return str(exc).strip()
        time.sleep(0.2)


@dataclass
class TestDatabase:
    """A fresh database for one test run."""

    __test__ = False  # not a test class, whatever its name

    admin_url: str
    name: str

    @property
    def url(self) -> str:
        return with_database(self.admin_url, self.name)

    @classmethod
    def create(cls) -> TestDatabase:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            unavailable("psycopg is not installed (pip install -e '.[dev]')")
        admin_url = server_url()
        error = wait_until_reachable(admin_url, 0)
        if error is not None and admin_url == LOCAL_URL:
            started = start_local_cluster()
            error = wait_until_reachable(admin_url, 30)
            if error is not None:
                error += f" (pg_ctlcluster start: {started})"
        if error is not None:
            unavailable(f"{admin_url}: {error}")
        name = f"pluginkv_test_{os.getpid()}_{secrets.token_hex(4)}"
        with connect(admin_url) as conn:
            conn.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
        return cls(admin_url, name)

    def drop(self) -> None:
        with connect(self.admin_url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def reset_tables(store: Store) -> None:
    """Empty the store's tables, so each test starts from nothing.

    DELETE rather than TRUNCATE: on the few rows a test leaves it takes a
    fraction of the time.
    """
    pool = store.backend._pool  # type: ignore[attr-defined]
    with pool.connection() as conn:
        conn.execute("DELETE FROM pluginkv_entries")
        conn.execute("DELETE FROM pluginkv_scopes")
        conn.execute("DELETE FROM pluginkv_token_revocations")
        conn.execute("DELETE FROM pluginkv_changes")


def terminate_sessions(admin_url: str, application_name: str) -> int:
    """Kill every server session of ``application_name``; how many there were."""
    with connect(admin_url) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)
