"""Pages each small write puts in SQLite's WAL: pluginkv ``Storage`` against raw ``sqlite3``.

At ``synchronous=NORMAL`` a commit is a ``write()`` of each page it changed into
the WAL, and the WAL is flushed at checkpoints, so a write's cost follows the
pages it changes; at ``FULL`` they are also what each commit's ``fdatasync``
flushes. This counts them, without timing anything:

* both engines as in ``bench_engine.py`` (pluginkv: ``open_store`` with its
  defaults and one scope; raw: ``kv(key TEXT PRIMARY KEY, value BLOB)`` in WAL mode,
  autocommit), each a fresh file in one temporary directory;
* per engine: ``--keys`` sets of new keys with a 100-byte value, then deletes of
  all of them, each one call, one commit; automatic checkpoints are off, and the
  WAL is checkpointed and emptied before each phase;
* the WAL's frame headers say which page each frame holds; ``dbstat`` says which
  table or index owns it (a page freed by the end of the phase is ``(freed)``).

Figures are frames per write, in total and by owner.
"""

from __future__ import annotations

import argparse
import collections
import random
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pluginkv

WORKSPACE = "bench-ws"
PLUGIN = "bench/engine"
FRAME_HEADER = 24
Frames = tuple[float, dict[str, float]]  # per write: in total, and by owner
WAL_HEADER = 32


def wal_pages(wal: Path) -> list[int]:
    """The page number of every frame in ``wal``, in order."""
    data = wal.read_bytes()
    if len(data) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", data[8:12])[0]
    pages, offset = [], WAL_HEADER
    while offset + FRAME_HEADER + page_size <= len(data):
        pages.append(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += FRAME_HEADER + page_size
    return pages


def owners(conn: sqlite3.Connection) -> dict[int, str]:
    """Page number to the table or index it belongs to; empty without ``dbstat``."""
    try:
        return {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    except sqlite3.OperationalError:
        return {}


def count(
    conn: sqlite3.Connection, wal: Path, op: Callable[[str], object], keys: Sequence[str]
) -> Frames:
    """Frames per call of ``op`` over ``keys``: in total and by owner."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for key in keys:
        op(key)
    pages = wal_pages(wal)
    names = owners(conn)
    by_owner = collections.Counter(names.get(page, "(freed)") for page in pages)
    n = len(keys)
    return len(pages) / n, {name: frames / n for name, frames in by_owner.most_common()}


def measure(path: Path, keys: Sequence[str], value: bytes) -> dict[str, Frames]:
    store = pluginkv.open_store(f"sqlite:///{path / 'pluginkv.db'}")
    storage = store.storage(workspace=WORKSPACE, plugin=PLUGIN)
    # The store's connection for this thread: the one its writes go through.
    pk_conn: sqlite3.Connection = store.backend._conn()  # type: ignore[attr-defined]
    raw = sqlite3.connect(path / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    results: dict[str, Frames] = {}
    try:
        engines = (
            (
                "pluginkv",
                pk_conn,
                path / "pluginkv.db-wal",
                lambda key: storage.set(key, value),
                storage.delete,
            ),
            (
                "raw",
                raw,
                path / "raw.db-wal",
                lambda key: raw.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value)),
                lambda key: raw.execute("DELETE FROM kv WHERE key = ?", (key,)),
            ),
        )
        for name, conn, wal, set_, delete in engines:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            results[f"{name} set"] = count(conn, wal, set_, keys)
            results[f"{name} delete"] = count(conn, wal, delete, keys)
    finally:
        store.close()
        raw.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="writes per phase (default 2000)")
    parser.add_argument("--dir", default=None, help="parent of the temporary directory")
    parser.add_argument("--quick", action="store_true", help="smoke test: 100 keys")
    args = parser.parse_args(argv)
    n = 100 if args.quick else args.keys
    if n < 1:
        parser.error("--keys must be positive")
    rng = random.Random(20240601)
    keys = [f"bench/key-{i:06d}" for i in range(n)]
    rng.shuffle(keys)
    value = rng.randbytes(100)
    print(
        f"WAL frames per write: {n} sets of new keys, then {n} deletes; SQLite "
        f"{sqlite3.sqlite_version}, pluginkv {pluginkv.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="pluginkv-wal-", dir=args.dir) as tmp:
        results = measure(Path(tmp), keys, value)
    for label, (total, by_owner) in results.items():
        parts = ", ".join(f"{name} {frames:.2f}" for name, frames in by_owner.items())
        print(f"{label:<16}{total:>6.2f}  ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
