"""The Dify plugin host: storage calls from inside a real plugin vs a no-op round trip.

A real ``dify_plugin`` plugin (``examples/storage_tool``, op ``bench``) times,
from inside its tool, ``n`` calls of ``session.storage.set`` / ``get`` and ``n``
no-op round trips over the same channel: the same backwards invocation,
answered by the host without touching storage (``noop`` carries the value up,
like ``set``; ``zeros`` brings as many bytes down, like ``get``).  Both run in
the same plugin process, in the same round, first one then the other, with
the order alternating from round to round, over stdio (an installed plugin)
and over TCP (a remote-debug plugin), against ``pluginkv serve`` in a
subprocess on a fresh data directory.

Targets (ratios, storage / no-op, medians of the per-round ratios):
100 B ops/s >= 0.8; 1 MiB MB/s >= 0.5.

    python benchmarks/bench_host.py [--quick] [--synchronous FULL,NORMAL] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.dify import sdk_venv  # noqa: E402  # the SDK's own environment, built once

PLUGIN = ROOT / "examples" / "storage_tool"
PLUGIN_ID = "pluginkv/storage_tool"
PLUGIN_ENVS = ROOT / ".cache" / "plugin-envs"
PLUGINKV = str(Path(sys.executable).parent / "pluginkv")
MiB = 1024 * 1024
# (label, size, storage call, no-op call, unit, target)
CASES = [
    ("set 100 B", 100, "set", "up", "ops", 0.8),
    ("get 100 B", 100, "get", "down", "ops", 0.8),
    ("set 1 MiB", MiB, "set", "up", "MB", 0.5),
    ("get 1 MiB", MiB, "get", "down", "MB", 0.5),
]


class Service:
    def __init__(self, data_dir: Path, synchronous: str) -> None:
        self.data_dir = data_dir
        self.port, self.debug_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGINKV_")}
        env.update(
            PLUGINKV_SQLITE_SYNCHRONOUS=synchronous,
            PLUGINKV_PLUGIN_ENVS_DIR=str(PLUGIN_ENVS),
            PLUGINKV_SESSION_TIMEOUT_SECONDS="600",
        )
        self.env = env
        self.log = (data_dir.parent / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [
                *(PLUGINKV, "serve", "--data-dir", str(data_dir)),
                *("--port", str(self.port), "--debug-port", str(self.debug_port)),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("pluginkv serve did not start") from None
                time.sleep(0.05)
        self.admin = self.cli("token", "create", "--admin")
        self.remote: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [PLUGINKV, *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]

    def call(self, method: str, path: str, body: Any) -> bytes:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.admin}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return data

    def start_plugins(self, python: Path) -> None:
        self.call(
            "POST", "/v1/admin/plugins/install", {"directory": str(PLUGIN), "workspace": "stdio"}
        )
        key = self.cli("debug-key", "create", "--workspace", "tcp")
        self.remote = subprocess.Popen(
            [str(python), "-m", "main"],
            cwd=PLUGIN,
            env={
                **self.env,
                "INSTALL_METHOD": "remote",
                "REMOTE_INSTALL_URL": f"127.0.0.1:{self.debug_port}",
                "REMOTE_INSTALL_KEY": key,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not any("tcp" in p["workspaces"] for p in self.plugins()):
            if time.monotonic() > deadline:
                raise SystemExit("the remote-debug plugin did not register")
            time.sleep(0.1)
        for workspace in ("stdio", "tcp"):  # room for 1 MiB values beyond the manifest's 64 KiB
            body = {"workspace": workspace, "plugin": PLUGIN_ID, "quota_bytes": 64 * MiB}
            self.call("PUT", "/v1/admin/quota", body)

    def plugins(self) -> list[dict[str, Any]]:
        request = urllib.request.Request(
            self.url + "/v1/admin/plugins", headers={"Authorization": f"Bearer {self.admin}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            listed: list[dict[str, Any]] = json.loads(response.read())["plugins"]
        return listed

    def bench(self, workspace: str, call: str, size: int, n: int) -> float:
        """Calls per second, timed inside the plugin."""
        spec = json.dumps({"call": call, "size": size, "n": n})
        body = {
            "workspace": workspace,
            "plugin": PLUGIN_ID,
            "provider": "storage_tool",
            "tool": "kv",
            "parameters": {"op": "bench", "value": spec},
        }
        (line,) = self.call("POST", "/v1/admin/tools/invoke", body).splitlines()
        answer = json.loads(line)["message"]["json_object"]
        if "error" in answer:
            raise SystemExit(f"{workspace} {call}: {answer['error']}")
        return float(answer["n"]) / float(answer["seconds"])

    def stop(self) -> None:
        if self.remote is not None:
            self.remote.kill()
            self.remote.wait()
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def run_mode(python: Path, synchronous: str, rounds: int, quick: bool) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        service = Service(Path(tmp) / "data", synchronous)
        try:
            service.start_plugins(python)
            for transport in ("stdio", "tcp"):
                for label, size, storage_call, noop_call, unit, target in CASES:
                    n = (20 if quick else 500) if size < MiB else (3 if quick else 30)
                    storage_rates, noop_rates, ratios = [], [], []
                    for round_ in range(rounds):
                        order = [storage_call, noop_call][:: 1 if round_ % 2 == 0 else -1]
                        rates = {call: service.bench(transport, call, size, n) for call in order}
                        storage_rates.append(rates[storage_call])
                        noop_rates.append(rates[noop_call])
                        ratios.append(rates[storage_call] / rates[noop_call])
                    scale = size / 1e6 if unit == "MB" else 1.0
                    ratio = statistics.median(ratios)
                    rows.append(
                        f"{transport:<6} {label:<10} "
                        f"{statistics.median(storage_rates) * scale:>12,.1f} {unit}/s "
                        f"{statistics.median(noop_rates) * scale:>12,.1f} {unit}/s "
                        f"{ratio:>6.2f}x  {min(ratios):.2f}-{max(ratios):.2f}  "
                        f">={target:.1f} {'PASS' if ratio >= target else 'MISS'}"
                    )
        finally:
            service.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synchronous", default="FULL,NORMAL")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls, 1 round")
    args = parser.parse_args()
    python = sdk_venv.ensure()
    rounds = 1 if args.quick else args.rounds
    print("pluginkv plugin host benchmark: storage calls vs no-op round trips, inside a plugin")
    sdk = sdk_venv.PIN.split("==")[1]
    print(f"python {sys.version.split()[0]}, dify_plugin {sdk}, {rounds} rounds")
    for mode in args.synchronous.split(","):
        print(f"\nsynchronous={mode}:")
        print("transp operation       storage         no-op        ratio  range      target")
        for row in run_mode(python, mode, rounds, args.quick):
            print(row)


if __name__ == "__main__":
    main()
