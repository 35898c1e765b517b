"""What attacks on the HTTP listener cost the other clients of ``pluginkv serve``.

Run with ``.venv/bin/python benchmarks/bench_attacks.py`` (``--help`` for options). It
starts ``python -m pluginkv serve`` on a fresh data directory and a free port (with the
``PLUGINKV_*`` variables of the calling environment, so limits can be set for a run, and
whatever ``pluginkv`` this interpreter imports: put another checkout's ``src`` first on
``PYTHONPATH`` to measure that one), stores one 100-byte value, and measures a normal
client -- one keep-alive connection doing ``GET /v1/kv/probe`` every 20 ms, or with
``--fresh`` a new connection per GET -- in four phases:

1. ``quiet``: nothing else happens (the reference);
2. ``slowloris``: N connections (default 200) each send a request line, then one header
   byte per second per connection, for ``--seconds`` (default 15: past the default
   ``PLUGINKV_HEADER_TIMEOUT_SECONDS`` of 10);
3. ``silent``: N connections (default 500) that send nothing, for ``--seconds``;
4. ``128 MiB header``: one connection sends a request whose one header is 128 MiB, as
   fast as the server reads it, until it is sent or the server cuts it off (plus 1 s).

Per phase: the probe's answer times (p50, p99, max) and failures, the server process's
CPU time (user + system, from /proc) and its peak RSS, and what became of the attack
(slow connections the server closed; header bytes sent before the server closed the
connection, and its answer). Figures only, no pass/fail: a shared machine moves them.
With ``--server-files 400 --fresh`` it shows whether 500 silent connections lock new
clients out of a server started with ``ulimit -n 400``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import HOST, free_port, load_average, on_sigterm, stop_process, version

MiB = 1024 * 1024
PROBE_INTERVAL = 0.02
FRESH_TIMEOUT = 5.0
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    token: str


def start_server(data_dir: Path, log: Path, open_files: int | None) -> Server:
    port = free_port()
    env = dict(os.environ)
    scope = ["--workspace", "bench-ws", "--plugin", "bench/attacks"]
    # The store and its token secret first: token create never makes a secret.
    init = [sys.executable, "-m", "pluginkv", "init", "--data-dir", str(data_dir)]
    subprocess.run(init, capture_output=True, check=True, env=env)
    token = subprocess.run(
        [sys.executable, "-m", "pluginkv", "token", "create", "--data-dir", str(data_dir), *scope],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()[-1]
    argv = [sys.executable, "-m", "pluginkv", "serve", "--data-dir", str(data_dir)]
    argv += ["--host", HOST, "--port", str(port), "--debug-port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=None if open_files is None else lambda: limit_open_files(open_files),
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"pluginkv serve exited:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return Server(process, port, token)
        except OSError:
            time.sleep(0.05)
    stop_process(process)
    raise SystemExit(f"pluginkv serve did not come up:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


@dataclass
class Phase:
    name: str
    times: list[float] = field(default_factory=list)  # seconds per GET
    failures: int = 0
    cpu: float = 0.0
    rss_peak: int = 0
    note: str = ""


class Probe:
    """A normal client: GET every 20 ms on one keep-alive connection (or, ``fresh``, each
    on a new one, which shows whether new clients get in), timed."""

    def __init__(self, server: Server, fresh: bool) -> None:
        self.server = server
        self.fresh = fresh
        # A new client locked out would wait forever; a stalled loop answers in seconds.
        self.timeout = FRESH_TIMEOUT if fresh else 60.0
        self.phase: Phase | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.server.token}"}
        conn: http.client.HTTPConnection | None = None
        while not self.stopped.is_set():
            phase = self.phase
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.server.port, timeout=self.timeout)
                conn.request("GET", "/v1/kv/probe", headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                if self.fresh:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                ok = False
                if conn is not None:
                    conn.close()
                conn = None
            if phase is not None and phase is self.phase:
                if ok:
                    phase.times.append(time.perf_counter() - started)
                else:
                    phase.failures += 1
            self.stopped.wait(PROBE_INTERVAL)
        if conn is not None:
            conn.close()


@contextmanager
def measured(probe: Probe, phase: Phase) -> Iterator[Phase]:
    pid = probe.server.process.pid
    cpu_before = cpu_seconds(pid)
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            phase.rss_peak = max(phase.rss_peak, rss_bytes(pid))
            sampling.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    probe.phase = phase
    try:
        yield phase
    finally:
        probe.phase = None
        sampling.set()
        sampler.join()
        phase.cpu = cpu_seconds(pid) - cpu_before


def slow_connections(port: int, count: int, seconds: float, drip: bool) -> str:
    """``count`` connections that send one header byte per second each (``drip``) or
    nothing at all, for ``seconds``; what the server did with them."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=5)
        if drip:
            sock.sendall(b"GET /v1/kv/probe HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
        sock.setblocking(False)
        sockets.append(sock)
    open_ = set(sockets)
    answered = 0
    closed_at: list[float] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            for sock in list(open_):
                try:
                    if drip:
                        sock.send(b"a")
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/"):
                    answered += 1
                open_.discard(sock)
                closed_at.append(time.monotonic() - started)
            time.sleep(1.0)
    finally:
        for sock in sockets:
            sock.close()
    if not closed_at:
        return f"all {count} connections still open after {seconds:g} s"
    return (
        f"{len(closed_at)} of {count} closed by the server (first after {min(closed_at):.1f} s, "
        f"last after {max(closed_at):.1f} s; {answered} with an answer); "
        f"{len(open_)} still open after {seconds:g} s"
    )


def huge_header(port: int, size: int) -> str:
    """Send a request whose one header is ``size`` bytes; what the server did."""
    sent = 0
    block = b"a" * MiB
    started = time.monotonic()
    outcome = "sent whole"
    answer = b""
    with socket.create_connection((HOST, port), timeout=120) as sock:
        try:
            sock.sendall(b"GET /v1/kv/probe HTTP/1.1\r\nHost: bench\r\nX-Big: ")
            while sent < size:
                sock.sendall(block)
                sent += len(block)
            sock.sendall(b"\r\n\r\n")
        except OSError as exc:
            outcome = f"cut off ({type(exc).__name__})"
        try:
            sock.settimeout(30)
            answer = sock.recv(200)
        except OSError:
            pass
    status = answer.split(b"\r\n", 1)[0].decode("latin-1") or "none"
    elapsed = time.monotonic() - started
    return f"{outcome} after {sent / MiB:,.0f} MiB in {elapsed:.1f} s; answer: {status}"


def run_attack(probe: Probe, phase: Phase, attack: Callable[[], str], tail: float) -> Phase:
    with measured(probe, phase):
        phase.note = attack()
        time.sleep(tail)
    return phase


def limit_open_files(soft: int) -> None:
    import resource

    resource.setrlimit(
        resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    )


def raise_own_open_files() -> None:
    """Room for this script's own connections, whatever the server is given."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def report(phases: Sequence[Phase]) -> None:
    print(
        f"\n{'phase':<16}{'GETs':>6}{'p50':>12}{'p99':>12}{'max':>12}{'failed':>8}"
        f"{'server CPU':>12}{'peak RSS':>11}"
    )
    print("-" * 89)
    for phase in phases:
        times = sorted(phase.times)
        if times:
            p50 = ms(statistics.median(times))
            p99 = ms(times[min(len(times) - 1, round(0.99 * (len(times) - 1)))])
            top = ms(times[-1])
        else:
            p50 = p99 = top = "-"
        print(
            f"{phase.name:<16}{len(times):>6}{p50:>12}{p99:>12}{top:>12}{phase.failures:>8}"
            f"{phase.cpu:>10.2f} s{phase.rss_peak / MiB:>7.0f} MiB"
        )
    for phase in phases:
        if phase.note:
            print(f"{phase.name}: {phase.note}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Answer times of a normal GET while pluginkv serve is under attack."
    )
    parser.add_argument("--slow", type=int, default=200, help="slowloris connections (200)")
    parser.add_argument("--silent", type=int, default=500, help="silent connections (500)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=15.0,
        help="length of the slowloris and the silent phase (15 s)",
    )
    parser.add_argument("--header-mib", type=int, default=128, help="the huge header (128 MiB)")
    parser.add_argument("--quiet-seconds", type=float, default=3.0, help="reference phase (3 s)")
    parser.add_argument(
        "--server-files",
        type=int,
        metavar="N",
        help="start the server with a soft open-file limit of N (ulimit -n), e.g. 400",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help=f"the probe opens a new connection per GET (a failure after {FRESH_TIMEOUT:g} s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 20 slow and 20 silent connections for 2 s each, 8 MiB",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.slow, args.silent, args.seconds, args.header_mib = 20, 20, 2.0, 8
        args.quiet_seconds = 0.5
    counts = (args.slow, args.silent, args.header_mib)
    if min(counts) < 1 or args.seconds <= 0 or args.quiet_seconds <= 0:
        parser.error("every option must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    where = subprocess.run(
        [sys.executable, "-c", "import pluginkv; print(pluginkv.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    limits = {k: v for k, v in os.environ.items() if k.startswith("PLUGINKV_")}
    print("pluginkv HTTP listener under attack: answer times of a normal GET")
    print(f"command : {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"date    : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine : {platform.machine()}, {os.cpu_count()} CPU(s), {platform.platform()}")
    libs = ("uvicorn", "uvloop", "httptools")
    print(
        f"python  : {platform.python_version()}; pluginkv from {where}; "
        + ", ".join(f"{n} {version(n)}" for n in libs)
    )
    files = "as this shell's" if args.server_files is None else f"{args.server_files} (soft)"
    print(f"settings: {limits or 'defaults'}; the server starts with open files {files}")
    print(
        f"probe   : a GET every {PROBE_INTERVAL * 1000:g} ms, "
        + ("each on a new connection" if args.fresh else "on one keep-alive connection")
    )
    print(f"load    : {load_average()} (1, 5, 15 min) at the start; the machine may be shared")
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-attacks-") as tmp_name:
        tmp = Path(tmp_name)
        raise_own_open_files()
        server = start_server(tmp / "data", tmp / "serve.log", args.server_files)
        probe = Probe(server, args.fresh)
        try:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
            conn.request(
                "PUT",
                "/v1/kv/probe",
                body=b"x" * 100,
                headers={"Authorization": f"Bearer {server.token}"},
            )
            assert conn.getresponse().status == 204, "cannot store the probe's value"
            conn.close()
            probe.thread.start()
            phases = [
                run_attack(probe, Phase("quiet"), lambda: "", args.quiet_seconds),
                run_attack(
                    probe,
                    Phase("slowloris"),
                    lambda: slow_connections(server.port, args.slow, args.seconds, drip=True),
                    0.0,
                ),
                run_attack(
                    probe,
                    Phase("silent"),
                    lambda: slow_connections(server.port, args.silent, args.seconds, drip=False),
                    0.0,
                ),
                run_attack(
                    probe,
                    Phase(f"{args.header_mib} MiB header"),
                    lambda: huge_header(server.port, args.header_mib * MiB),
                    1.0,
                ),
            ]
        finally:
            probe.stopped.set()
            if probe.thread.is_alive():
                probe.thread.join()
            stop_process(server.process)
    report(phases)
    print(f"load    : {load_average()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
