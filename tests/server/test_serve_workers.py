"""``pluginkv serve --workers N`` as a real service: one port, several processes, one store."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_serve import Service

SCOPE = ("--workspace", "ws-1", "--plugin", "acme/weather")


class Worker:
    """A keep-alive connection, which stays with the worker that accepted it."""

    def __init__(self, service: Service, admin: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        self.info = self.call("GET", "/v1/admin/info", admin)[1]
        self.index: int = self.info["worker"]
        self.pid: int = self.info["pid"]

    def call(
        self, method: str, path: str, token: str, body: bytes | None = None
    ) -> tuple[int, dict | bytes]:  # type: ignore[type-arg]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data

    def close(self) -> None:
        self.conn.close()


def one_of_each(service: Service, admin: str, count: int = 2) -> dict[int, Worker]:
    """A connection to each worker: the kernel hands new connections to whichever accepts."""
    found: dict[int, Worker] = {}
    spare: list[Worker] = []
    deadline = time.monotonic() + 30
    while len(found) < count:
        assert time.monotonic() < deadline, f"only workers {sorted(found)} accepted connections"
        worker = Worker(service, admin)
        OPEN.append(worker)
        if worker.index in found:
            spare.append(worker)  # held open, so the next connection may go elsewhere
        else:
            found[worker.index] = worker
        if len(spare) > 50:
            for other in spare:
                other.close()
            spare.clear()
            time.sleep(0.05)
    return found


@pytest.fixture(name="workers")
def _workers(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path / "data")
    service.extra_args = ["--workers", "2"]
    service.start()
    yield service
    for connection in OPEN:
        connection.close()
    OPEN.clear()
    if service.process is not None and service.process.poll() is None:
        service.stop(signal.SIGKILL)


OPEN: list[Worker] = []  # closed by the fixture


def test_two_workers_answer_on_one_port_and_read_each_others_writes(workers: Service) -> None:
    admin, token = workers.token("--admin"), workers.token(*SCOPE)
    both = one_of_each(workers, admin)
    assert both[0].pid != both[1].pid
    assert both[0].info["workers"] == both[1].info["workers"] == 2
    assert both[1].call("PUT", "/v1/kv/city", token, b"Berlin")[0] == 204
    assert both[0].call("GET", "/v1/kv/city", token) == (200, b"Berlin")
    assert both[0].call("DELETE", "/v1/kv/city", token)[0] == 204
    assert both[1].call("GET", "/v1/kv/city", token)[0] == 404


def test_the_plugin_host_routes_on_any_worker_are_answered_by_worker_0(workers: Service) -> None:
    admin = workers.token("--admin")
    both = one_of_each(workers, admin)
    assert both[1].call("GET", "/v1/admin/plugins", admin) == both[0].call(
        "GET", "/v1/admin/plugins", admin
    )
    # A body goes through too, and worker 0's own error comes back.
    invoke = b'{"plugin": "acme/none", "tool": "t", "workspace": "ws-1", "parameters": {}}'
    relayed = both[1].call("POST", "/v1/admin/tools/invoke", admin, invoke)
    assert relayed == both[0].call("POST", "/v1/admin/tools/invoke", admin, invoke)
    assert relayed[0] == 400
    # Credentials are checked by worker 0 as if the request had come to it.
    status, body = both[1].call("GET", "/v1/admin/plugins", workers.token(*SCOPE))
    assert status == 403 and isinstance(body, dict)


def _usage_requests(metrics: str) -> float:
    found = re.findall(
        r'^pluginkv_http_requests_total\{[^}]*route="/v1/usage"[^}]*\} ([\d.e+]+)$',
        metrics,
        re.MULTILINE,
    )
    return sum(float(n) for n in found)


def test_metrics_on_any_worker_add_up_every_workers_requests(workers: Service) -> None:
    admin, token = workers.token("--admin"), workers.token(*SCOPE)
    both = one_of_each(workers, admin)
    for _ in range(3):
        assert both[0].call("GET", "/v1/usage", token)[0] == 200
    for _ in range(5):
        assert both[1].call("GET", "/v1/usage", token)[0] == 200
    for worker in both.values():
        status, body = worker.call("GET", "/metrics", "")
        assert status == 200 and isinstance(body, bytes)
        assert _usage_requests(body.decode()) == 8


def test_a_killed_worker_is_started_again_and_every_acknowledged_write_is_kept(
    workers: Service,
) -> None:
    admin, token = workers.token("--admin"), workers.token(*SCOPE)
    both = one_of_each(workers, admin)
    acknowledged = {}
    for i in range(100):
        value = os.urandom(1 + i % 40)
        if both[1].call("PUT", f"/v1/kv/k{i}", token, value)[0] == 204:
            acknowledged[f"k{i}"] = value
    os.kill(both[1].pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        again = one_of_each(workers, admin)
        if again[1].pid != both[1].pid:
            break
        assert time.monotonic() < deadline, "worker 1 was not started again"
        time.sleep(0.2)
    assert again[0].pid == both[0].pid  # the others served on
    for key, value in acknowledged.items():
        assert again[1].call("GET", f"/v1/kv/{key}", token) == (200, value)
    status, usage = again[0].call("GET", "/v1/usage", token)
    expected = sum(len(k) + len(v) for k, v in acknowledged.items())
    assert status == 200 and isinstance(usage, dict) and usage["bytes_used"] == expected


def test_sigterm_stops_every_worker_and_says_so(workers: Service) -> None:
    admin = workers.token("--admin")
    pids = [worker.pid for worker in one_of_each(workers, admin).values()]
    code, output = workers.stop(signal.SIGTERM)
    assert code == 0, output
    assert "2 workers" in output
    assert output.count("Application shutdown complete") == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_end_with_a_supervisor_killed_by_sigkill(workers: Service) -> None:
    admin = workers.token("--admin")
    pids = [worker.pid for worker in one_of_each(workers, admin).values()]
    workers.stop(signal.SIGKILL)  # returns once every holder of its output has gone
    deadline = time.monotonic() + 30
    for pid in pids:
        while _alive(pid):
            assert time.monotonic() < deadline, f"worker {pid} outlived its supervisor"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; its parent (init) reaps it
