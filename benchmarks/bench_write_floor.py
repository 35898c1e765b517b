"""What one durable write costs at least on this machine, whatever the service around it does.

A client that writes from one thread waits for each write's commit before it
sends the next, so no grouping can share the cost: every ``set`` pays for one
commit. This prints the parts of that cost, each measured alone, so that a
single-client write target can be checked against what the disk allows:

* ``fdatasync``: 4 KiB written, then ``os.fdatasync``, in a file on the
  filesystem of ``--dir``; once overwriting blocks in place (what SQLite's
  reused WAL mostly does), once appending (a growing WAL: the size is flushed too).
* ``store.set``: one 100 B ``Storage.set`` through the engine (one committed
  transaction), in a tight loop, for ``synchronous=FULL`` and ``NORMAL``, after
  as many unmeasured ones.
* ``writer hop``: a call handed to the service's writer thread and its answer
  back on the event loop (uvloop), empty and with the same ``set``: what the
  service adds to every write so that a commit never blocks its event loop.

Figures are medians of the calls (the spread in brackets: 10th-90th percentile).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from pluginkv import Settings
from pluginkv.services.write_groups import WriteQueue
from pluginkv.store import Store

VALUE = b"x" * 100


def spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    tenth, ninetieth = ordered[len(ordered) // 10], ordered[len(ordered) * 9 // 10]
    median = statistics.median(ordered)
    return f"{median * 1e6:7.0f} us  ({tenth * 1e6:.0f}-{ninetieth * 1e6:.0f})"


def timed(call: Callable[[], object], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def fdatasync_times(directory: Path, n: int, append: bool) -> list[float]:
    block = b"x" * 4096
    with tempfile.NamedTemporaryFile(dir=directory) as file:
        fd = file.fileno()
        os.write(fd, b"\0" * 4096 * n)
        os.fsync(fd)
        times = []
        for i in range(n):
            os.pwrite(fd, block, (n + i if append else i) * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
        return times


async def hop_times(store: Store, call: Callable[[], object], n: int) -> list[float]:
    writer = WriteQueue(max_group=1)
    try:
        await writer.run(store.backend, call)  # starts the thread
        times = []
        for _ in range(n):
            started = time.perf_counter()
            await writer.run(store.backend, call)
            times.append(time.perf_counter() - started)
        return times
    finally:
        writer.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="a directory on the disk to measure"
    )
    parser.add_argument("--calls", type=int, default=500, help="calls per figure (default 500)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 calls per figure")
    args = parser.parse_args()
    n = 20 if args.quick else args.calls
    if n < 10:
        parser.error("--calls must be at least 10")
    print("the floor of one durable write, one thread, this machine")
    print(f"python {sys.version.split()[0]}; directory {args.dir.resolve()}; {n} calls per figure")
    print(f"fdatasync, 4 KiB overwritten     {spread(fdatasync_times(args.dir, n, False))}")
    print(f"fdatasync, 4 KiB appended        {spread(fdatasync_times(args.dir, n, True))}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for mode in ("FULL", "NORMAL"):
            settings = Settings(data_dir=str(Path(tmp) / mode), sqlite_synchronous=mode)
            store = Store(settings)
            try:
                storage = store.storage(workspace="bench", plugin="bench/floor")
                put = functools.partial(storage.set, "floor", VALUE)
                timed(put, n)  # the WAL grows to its working size first
                print(f"store.set 100 B, {mode:<6}          {spread(timed(put, n))}")
                hop = uvloop.run(hop_times(store, lambda: None, n))
                print(f"writer hop, empty, {mode:<6}       {spread(hop)}")
                hop = uvloop.run(hop_times(store, put, n))
                print(f"writer hop + set 100 B, {mode:<6}  {spread(hop)}")
            finally:
                store.close()


if __name__ == "__main__":
    main()
