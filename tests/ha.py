"""A PostgreSQL cluster with automatic failover, built with pg_auto_failover.

``HACluster.start()`` creates a monitor and two PostgreSQL nodes with
``pg_autoctl`` (Debian's ``postgresql-15-auto-failover``, installed by
``make pg-ha-deps``), each on a free port under a temporary directory of its
own, and waits until one node is primary and the other its synchronous
standby; ``stop()`` ends every process it started and removes the directory.
The machine's own cluster (5432) is never touched.

Run as root, every ``pg_autoctl`` runs as the ``postgres`` user (``initdb``
refuses root).  Its configuration and state files go under the temporary
directory too (``XDG_*``), never into the user's home.

With two data nodes, pg_auto_failover makes the standby synchronous
(``synchronous_standby_names = 'ANY 1 (...)'``, ``synchronous_commit = on``):
a commit is acknowledged once the standby has flushed it.  Its formation
setting ``number_sync_standbys`` counts the standbys a commit must reach even
after one is lost, so 1 needs two standbys: ``start(standbys=2)`` builds three
data nodes and sets it.

``python -m tests.ha [standbys]`` (``make pg-ha``, ``make pg-ha STANDBYS=2``)
starts one by hand, prints its URL and state, and removes it on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FORMATION = "default"
DBNAME = "pluginkv"
# The monitor's defaults notice a dead primary after 20 s and more (health
# checks every 5 s, 20 s without a report from its keeper); a test cluster on
# one machine can afford a tighter watch.  The defaults, for real hosts, are in
# docs/scaling.md.
MONITOR_TUNING = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 3000,
    # How long the monitor waits for a lost primary to confirm it stopped
    # before promoting; it must outlast the keeper's own fencing below.
    "pgautofailover.primary_demote_timeout": 5000,
}
# A keeper that can reach neither the monitor nor a standby for this long
# demotes its own primary, so two primaries never take writes.
KEEPER_TUNING = {"timeout.network_partition_timeout": "3"}
SETUP_SECONDS = 180.0
# The states the monitor assigns to the node that is primary.
PRIMARY_STATES = ("single", "wait_primary", "primary", "join_primary", "apply_settings")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing() -> str | None:
    """Why no cluster can be built here, or ``None``."""
    if shutil.which("pg_autoctl") is None:
        return "pg_autoctl is not installed (make pg-ha-deps)"
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL 15 server binaries in {PG_BIN}"
    return None


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DBNAME}"


@dataclass
class HACluster:
    root: Path
    monitor: Node
    nodes: list[Node] = field(default_factory=list)

    # -- building --------------------------------------------------------------------------
    @classmethod
    def start(cls, standbys: int = 1) -> HACluster:
        """A primary and ``standbys`` standbys; with two, ``number_sync_standbys`` is 1."""
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        root = Path(tempfile.mkdtemp(prefix="pluginkv-ha-"))
        # pg_autoctl's configuration, state and pid files (XDG_*), which it
        # would put elsewhere (its pid files under /tmp) were these missing.
        for path in (root, root / "config", root / "share", root / "run"):
            path.mkdir(mode=0o700, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        cluster = cls(root, Node("monitor", free_port(), root / "monitor"))
        try:
            cluster._build(standbys)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _build(self, standbys: int) -> None:
        self.monitor.process = self._spawn(
            self.monitor,
            "create",
            "monitor",
            "--pgport",
            str(self.monitor.port),
            "--hostname",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--run",
        )
        self._wait(lambda: self._monitor_query("SELECT 1 FROM pgautofailover.formation"))
        with _connect(self._monitor_url("postgres")) as conn:
            for name, value in MONITOR_TUNING.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        self.nodes = [
            Node(f"node{n}", free_port(), self.root / f"node{n}") for n in range(1, standbys + 2)
        ]
        first, *others = self.nodes
        self._create_node(first)
        self._wait(lambda: self.states().get(first.name) == ("single", "single"))
        self._configure_keeper(first)
        with _connect(first.url) as conn:
            # A standby starts from a base backup, which waits for a checkpoint
            # spread over minutes (checkpoint_completion_target); a test
            # cluster has no load to spread it for.
            conn.execute("ALTER SYSTEM SET checkpoint_completion_target = 0")
            conn.execute("SELECT pg_reload_conf()")
        for count, node in enumerate(others, start=1):
            self._create_node(node)
            self.wait_healthy(standbys=count)
            self._configure_keeper(node)
        if standbys >= 2:
            # Every commit waits for one standby even after one is lost.
            self._monitor_query(
                f"SELECT pgautofailover.set_formation_number_sync_standbys('{FORMATION}', 1)"
            )
            self.wait_healthy()  # the primary applies it (apply_settings), then is primary again

    def _create_node(self, node: Node) -> None:
        node.process = self._spawn(
            node,
            "create",
            "postgres",
            "--pgport",
            str(node.port),
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--name",
            node.name,
            "--dbname",
            DBNAME,
            "--monitor",
            self._monitor_url("autoctl_node"),
            "--auth",
            "trust",
            "--no-ssl",
            "--run",
        )

    def _configure_keeper(self, node: Node) -> None:
        for name, value in KEEPER_TUNING.items():
            self._command(node, "config", "set", name, value)
        self._command(node, "reload")

    def _command(self, node: Node, *args: str) -> None:
        env, command = self._pg_autoctl(node, *args)
        subprocess.run(command, cwd=self.root, env=env, check=True, capture_output=True, timeout=60)

    def _spawn(self, node: Node, *args: str) -> subprocess.Popen[bytes]:
        """``pg_autoctl <args> --pgdata <node's>`` in a process group of its own."""
        env, command = self._pg_autoctl(node, *args)
        with (self.root / f"{node.name}.log").open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one group: a kill takes the keeper and its postgres
            )

    def _pg_autoctl(self, node: Node, *args: str) -> tuple[dict[str, str], list[str]]:
        """The environment and command line of ``pg_autoctl <args>`` for ``node``."""
        env = {
            "PATH": f"{PG_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "share"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "PG_CONFIG": str(PG_BIN / "pg_config"),
        }
        command = ["pg_autoctl", *args, "--pgdata", str(node.pgdata)]
        if args[0] == "create":
            command += ["--pgctl", str(PG_BIN / "pg_ctl")]
        if os.geteuid() == 0:
            assignments = [f"{name}={value}" for name, value in env.items()]
            command = ["runuser", "-u", "postgres", "--", "env", *assignments, *command]
        return {**os.environ, **env}, command

    # -- looking -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The multi-host URL that follows the primary."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgresql://postgres@{hosts}/{DBNAME}?target_session_attrs=read-write"

    def _monitor_url(self, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.monitor.port}/pg_auto_failover"

    def _monitor_query(self, sql: str) -> list[tuple[Any, ...]]:
        with _connect(self._monitor_url("autoctl_node")) as conn:
            return conn.execute(sql).fetchall()

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's reported and assigned state, as the monitor sees them."""
        rows = self._monitor_query(
            "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node "
            f"WHERE formationid = '{FORMATION}' ORDER BY nodeid"
        )
        return {name: (reported, goal) for name, reported, goal in rows}

    def primary(self) -> Node:
        """The node the monitor has made primary (alone or with its standby)."""
        for node in self.nodes:
            if self.states().get(node.name, ("", ""))[1] in PRIMARY_STATES:
                return node
        raise AssertionError(f"no primary: {self.states()}")

    def standby(self) -> Node:
        primary = self.primary()
        return next(node for node in self.nodes if node is not primary)

    def synchronous_standby_names(self) -> str:
        with _connect(self.primary().url) as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
        return str(row[0]) if row else ""

    def number_sync_standbys(self) -> int:
        rows = self._monitor_query(
            "SELECT number_sync_standbys FROM pgautofailover.formation "
            f"WHERE formationid = '{FORMATION}'"
        )
        return int(rows[0][0])

    def show_state(self) -> str:
        return "\n".join(
            f"{name}: reported {reported}, assigned {goal}"
            for name, (reported, goal) in self.states().items()
        )

    # -- faults and repair -------------------------------------------------------------------
    def kill(self, node: Node) -> None:
        """SIGKILL the node's keeper and postmaster at once: the server is gone."""
        assert node.process is not None
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
        node.process = None

    def rejoin(self, node: Node) -> None:
        """Run a killed node's keeper again; the monitor makes it the standby."""
        assert node.process is None, f"{node.name} is running"
        node.process = self._spawn(node, "run")

    def wait_healthy(self, timeout: float = SETUP_SECONDS, standbys: int | None = None) -> None:
        """Until one node is primary and the others (or the first ``standbys``) its
        secondaries, all as assigned."""
        wanted = [("primary", "primary")] + [("secondary", "secondary")] * (
            len(self.nodes) - 1 if standbys is None else standbys
        )

        def healthy() -> bool:
            return sorted(self.states().values()) == wanted

        self._wait(healthy, timeout)

    def _wait(self, check: Any, timeout: float = SETUP_SECONDS) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for node in (self.monitor, *self.nodes):
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"{node.name} exited: {self.log(node)[-2000:]}")
            try:
                if check():
                    return
            except psycopg.Error as exc:
                last = exc
            time.sleep(0.2)
        states = self._safe_states()
        raise TimeoutError(f"the cluster did not settle in {timeout:g} s: {states} ({last})")

    def _safe_states(self) -> object:
        import psycopg

        try:
            return self.states()
        except psycopg.Error as exc:
            return exc

    def log(self, node: Node) -> str:
        path = self.root / f"{node.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """End every process this cluster started and remove its directory."""
        for node in (*self.nodes, self.monitor):
            process = node.process
            if process is None:
                continue
            if process.poll() is None:
                # Not a signal to the group: PostgreSQL would get it too and its
                # keeper would restart it, and runuser answers SIGTERM by killing
                # pg_autoctl's supervisor and leaving its services behind.
                try:
                    self._command(node, "stop")
                    process.wait(timeout=30)
                except (subprocess.SubprocessError, OSError):
                    pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
            except ProcessLookupError:
                pass
            process.wait()
            node.process = None
        for node in (*self.nodes, self.monitor):
            _wait_for_postmaster_exit(node.pgdata)
        shutil.rmtree(self.root, ignore_errors=True)


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=2)


def _wait_for_postmaster_exit(pgdata: Path, timeout: float = 10.0) -> None:
    """Until no process of the node's postgres is left (its backends outlive a SIGKILL)."""
    pid_file = pgdata / "postmaster.pid"
    deadline = time.monotonic() + timeout
    while pid_file.exists() and time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.1)


def main() -> None:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    standbys = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    cluster = HACluster.start(standbys)
    try:
        print(f"monitor: {cluster._monitor_url('autoctl_node')}")
        print(f"URL:     {cluster.url}")
        print(f"primary's synchronous_standby_names: {cluster.synchronous_standby_names()}")
        print(f"number_sync_standbys: {cluster.number_sync_standbys()}")
        print(cluster.show_state())
        print(f"pluginkv serve --db '{cluster.url}'")
        print(f"files and logs under {cluster.root}; Ctrl-C stops and removes it")
        sys.stdout.flush()
        while not stopping.wait(1):
            pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
