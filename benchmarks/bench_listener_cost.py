"""What the HTTP listener's limits cost a request: one app under both protocols, side by side.

Run with ``.venv/bin/python benchmarks/bench_listener_cost.py`` (``--help`` for options);
it needs ``wrk``, as ``bench_server.py`` does. Two servers run ``bench_server.py``'s echo
app under ``uvicorn.run`` with the arguments of ``pluginkv serve``, differing only in the
HTTP protocol: uvicorn's own httptools protocol (``plain``), and pluginkv's
``server/listener_limits.py`` at its default limits (``limited``), which ``pluginkv serve``
runs. A round loads each with ``wrk -t2 -c16 -d<duration>s`` for GET and for PUT (100 B),
the order alternating from round to round. Shown: req/s and the server's CPU time per
request (user + system, from /proc; what other load on a shared machine moves least),
medians over the rounds, and the median of the per-round ratios limited / plain.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from bench_server import (
    HOST,
    IDLE_TIMEOUT,
    INSTALL_HINT,
    MODULE,
    ServerSpec,
    WrkRun,
    lua_script,
    make_echo_app,
    process_cpu,
    rotated,
    run_wrk,
    start_server,
)

KINDS = ("plain", "limited")


def serve(port: int, kind: str) -> None:
    import uvicorn

    from pluginkv.config import Settings
    from pluginkv.server.listener_limits import ListenerLimits, limited_protocol

    limits = ListenerLimits.from_settings(Settings())
    uvicorn.run(
        make_echo_app(),  # type: ignore[arg-type]
        host=HOST,
        port=port,
        loop="uvloop",
        http=limited_protocol(limits) if kind == "limited" else "httptools",
        access_log=False,
        timeout_keep_alive=IDLE_TIMEOUT,
        log_level="warning",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(int(args.serve[0]), args.serve[1])
        return 0
    if shutil.which("wrk") is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    if args.rounds < 1 or args.duration < 1:
        parser.error("--rounds and --duration must be positive")
    me = str(Path(__file__).resolve())
    specs = [ServerSpec(kind, (sys.executable, me, "--serve", "{port}", kind)) for kind in KINDS]
    runs: dict[tuple[str, str], list[WrkRun]] = defaultdict(list)
    print(
        f"listener limits vs uvicorn's httptools protocol, {MODULE.name}'s echo app: "
        f"{args.rounds} rounds of wrk -t2 -c16 -d{args.duration}s per protocol and method"
    )
    with tempfile.TemporaryDirectory(prefix="pluginkv-bench-listener-") as tmp_name:
        tmp = Path(tmp_name)
        with ExitStack() as stack:
            servers = {spec.name: start_server(spec, tmp, stack) for spec in specs}
            scripts = {method: lua_script(tmp, method, "none") for method in ("GET", "PUT")}
            for round_ in range(args.rounds):
                for method in ("GET", "PUT"):
                    for kind in rotated(list(KINDS), round_):
                        pid = servers[kind].process.pid
                        before = process_cpu(pid)
                        run = run_wrk(servers[kind].url, scripts[method], args.duration, 16, 2)
                        after = process_cpu(pid)
                        if before is not None and after is not None and run.requests:
                            run.server_cpu = (after - before) / run.requests
                        runs[kind, method].append(run)
    print(
        f"\n{'method':<8}{'protocol':<10}{'req/s':>10}{'CPU/req':>10}{'req/s ratio':>14}"
        f"{'CPU ratio':>12}"
    )
    for method in ("GET", "PUT"):
        plain, limited = runs["plain", method], runs["limited", method]
        rate_ratio = statistics.median(b.rate / a.rate for a, b in zip(plain, limited, strict=True))
        cpu_ratio = statistics.median(
            (b.server_cpu or 0) / (a.server_cpu or 1) for a, b in zip(plain, limited, strict=True)
        )
        for kind, kind_runs in (("plain", plain), ("limited", limited)):
            rate = statistics.median(r.rate for r in kind_runs)
            cpu = statistics.median((r.server_cpu or 0) * 1e6 for r in kind_runs)
            ratios = f"{rate_ratio:>13.3f}x{cpu_ratio:>11.3f}x" if kind == "limited" else ""
            print(f"{method:<8}{kind:<10}{rate:>10,.0f}{cpu:>7.1f} us{ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
