"""Helpers the benchmark scripts share: ports, server processes, and what a report prints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

HOST = "127.0.0.1"
PLUGINKV = str(Path(sys.executable).parent / "pluginkv")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def load_average() -> str:
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "?"


def with_database(url: str, dbname: str) -> str:
    """``url`` naming the database ``dbname`` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))


@contextmanager
def bench_database(server: str, prefix: str = "pluginkv_bench") -> Iterator[str]:
    """A fresh database on the PostgreSQL ``server`` for this run; dropped afterwards."""
    import psycopg  # only the PostgreSQL benchmarks need the driver

    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def serve_pluginkv(
    data_dir: Path, port: int, settings: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``pluginkv serve`` on ``data_dir`` with ``settings`` (environment), once it answers."""
    env = {**os.environ, "PLUGINKV_LOG_LEVEL": "warning", **settings}
    command = [PLUGINKV, "serve", "--data-dir", str(data_dir), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--debug-port", "off"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1).read()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("pluginkv serve exited") from None
            time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("pluginkv serve did not come up")
