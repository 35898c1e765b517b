"""The Dify plugin host: storage calls from inside a real plugin vs a no-op round trip.

A real ``dify_plugin`` plugin (op ``bench`` of its ``kv`` tool) times, from
inside its tool, ``n`` calls of ``session.storage.set`` / ``get`` and ``n``
no-op round trips over the same channel: the same backwards invocation,
answered by the host without touching storage (``noop`` carries the value up,
like ``set``; ``zeros`` brings as many bytes down, like ``get``).  Both run in
the same plugin process, in the same round, first one then the other, with
the order alternating from round to round, over stdio (an installed plugin)
and over TCP (a remote-debug plugin), against ``pluginkv serve`` in a
subprocess on a fresh data directory.  Each SDK generation runs its own
example: ``dify_plugin`` 0.7.4 ``examples/storage_tool`` (Python 3.11,
requirements.txt), 0.10.2 ``examples/storage_tool_v2`` (Python 3.12, uv.lock).

Targets (ratios, storage / no-op, medians of the per-round ratios):
100 B ops/s >= 0.8; 1 MiB MB/s >= 0.5.

``--first-install N`` (not in ``--quick``) also times building the
environment of ``examples/storage_tool_v2`` from its ``uv.lock``, N times
each: with uv as the host builds it (``pluginkv.host.envs``), and with
``python -m venv`` and pip from the same pins (``uv export``), each with an
empty download cache (cold) and with one filled by an untimed build (warm).

    python benchmarks/bench_host.py [--quick] [--synchronous FULL,NORMAL] [--rounds N]
        [--sdk 0.7.4,0.10.2] [--first-install N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import free_port
from pluginkv.host.envs import Environments, uv_binary
from pluginkv.host.plugin_dir import read_plugin_directory
from pluginkv.host.pythons import find_python
from pluginkv.store import load_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.dify import sdk_venv  # noqa: E402  # the SDK's own environment, built once


@dataclass(frozen=True)
class Generation:
    """An SDK release and the example plugin written for it."""

    sdk: sdk_venv.Sdk
    directory: Path
    name: str  # the plugin's name and its provider's

    @property
    def plugin_id(self) -> str:
        return f"pluginkv/{self.name}"


GENERATIONS = {
    g.sdk.version: g
    for g in (
        Generation(sdk_venv.SDK_0_7, ROOT / "examples" / "storage_tool", "storage_tool"),
        Generation(sdk_venv.SDK_0_10, ROOT / "examples" / "storage_tool_v2", "storage_tool_v2"),
    )
}
LOCKED = ROOT / "examples" / "storage_tool_v2"  # the plugin with a uv.lock
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
                data: bytes = response.read()
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return data

    def start_plugins(self, generation: Generation, python: Path) -> None:
        self.generation = generation
        install = {"directory": str(generation.directory), "workspace": "stdio"}
        self.call("POST", "/v1/admin/plugins/install", install)
        key = self.cli("debug-key", "create", "--workspace", "tcp")
        self.remote = subprocess.Popen(
            [str(python), "-m", "main"],
            cwd=generation.directory,
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
        for workspace in ("stdio", "tcp"):  # room for 1 MiB values beyond the manifests' quota
            body = {"workspace": workspace, "plugin": generation.plugin_id, "quota_bytes": 64 * MiB}
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
            "plugin": self.generation.plugin_id,
            "provider": self.generation.name,
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


def run_mode(
    generation: Generation, python: Path, synchronous: str, rounds: int, quick: bool
) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        service = Service(Path(tmp) / "data", synchronous)
        try:
            service.start_plugins(generation, python)
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


# -- first install: the environment of a plugin with a uv.lock, with uv and with pip ---------
def build_with_uv(envs: Path, cache: Path) -> None:
    """What the host does at a first install (``Environments.ensure``), with this download cache."""
    os.environ["UV_CACHE_DIR"] = str(cache)
    try:
        asyncio.run(Environments(envs).ensure(read_plugin_directory(str(LOCKED))))
    finally:
        del os.environ["UV_CACHE_DIR"]


def build_with_pip(env: Path, cache: Path, interpreter: Path, requirements: Path) -> None:
    """The same pins the pip way: ``python -m venv``, then ``pip install -r`` with their hashes."""
    environ = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_NO_INPUT": "1"}
    environ.pop("VIRTUAL_ENV", None)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for argv in (
        [str(interpreter), "-m", "venv", str(env)],
        [*pip, "--disable-pip-version-check", "-r", str(requirements)],
    ):
        # pip warns of every configured index that lacks a package: shown only on failure.
        done = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:4])} failed: {done.stderr[-2000:]}")


def first_install(rounds: int) -> list[str]:
    settings = load_settings()
    manifest = read_plugin_directory(str(LOCKED)).manifest
    interpreter = find_python(manifest.runner_version, settings.plugin_pythons).path
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp_name:
        tmp = Path(tmp_name)
        requirements = tmp / "requirements.txt"
        export = [uv_binary(), "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet"]
        subprocess.run([*export, "-o", str(requirements)], cwd=LOCKED, check=True)
        builders: dict[str, Callable[[Path, Path], None]] = {
            "uv": build_with_uv,
            "pip": functools.partial(
                build_with_pip, interpreter=interpreter, requirements=requirements
            ),
        }
        for tool, build in builders.items():
            warm = tmp / f"{tool}-warm-cache"
            build(tmp / f"{tool}-warming", warm)  # fills the warm cache, untimed
            for cache_state in ("cold", "warm"):
                seconds = []
                for round_ in range(rounds):
                    target = tmp / f"{tool}-{cache_state}-{round_}"
                    cache = warm if cache_state == "warm" else tmp / f"{target.name}-cache"
                    started = time.perf_counter()
                    build(target, cache)
                    seconds.append(time.perf_counter() - started)
                rows.append(
                    f"{tool:<4} {cache_state:<5} {statistics.median(seconds):>7.2f} s  "
                    f"{min(seconds):.2f}-{max(seconds):.2f}"
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synchronous", default="FULL,NORMAL")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls, 1 round")
    parser.add_argument("--sdk", default=",".join(GENERATIONS), help="the SDK releases to run")
    parser.add_argument(
        "--first-install", type=int, default=3, metavar="N", help="builds timed (0: none)"
    )
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    print("pluginkv plugin host benchmark: storage calls vs no-op round trips, inside a plugin")
    print(f"service on python {sys.version.split()[0]}, {rounds} rounds")
    for version in [v for v in args.sdk.split(",") if v]:  # --sdk "": first install only
        generation = GENERATIONS[version]
        python = sdk_venv.ensure(generation.sdk)
        plugin_python = subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for mode in args.synchronous.split(","):
            print(
                f"\ndify_plugin {version} (python {plugin_python}, "
                f"{generation.directory.name}), synchronous={mode}:"
            )
            print("transp operation       storage         no-op        ratio  range      target")
            for row in run_mode(generation, python, mode, rounds, args.quick):
                print(row)
    if args.first_install and not args.quick:
        print(f"\nfirst install of {LOCKED.name} (uv.lock), {args.first_install} builds each:")
        print("tool cache  median   range")
        for row in first_install(args.first_install):
            print(row)


if __name__ == "__main__":
    main()
