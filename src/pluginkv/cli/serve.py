"""``pluginkv serve``: the HTTP service and the plugin host of a local data directory."""

from __future__ import annotations

import copy
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..config import Settings, env_name, redact_url
from ..errors import PluginKVError
from ..store import Store
from .common import CommandFailed, PluginKVFailure, data_dir_option, service_settings

__all__ = ["serve"]


class _DebugPort(click.ParamType[int | None]):
    """A port number, or ``off``: no remote-debug listener at all (``None``)."""

    name = "N|off"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "off":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a port number nor 'off'", param, ctx)


@click.command("serve")
@data_dir_option
@click.option(
    "--db",
    metavar="URL",
    help="Database URL, e.g. postgresql://user@host/dbname [default: <data-dir>/pluginkv.db].",
)
@click.option(
    "--host",
    envvar="PLUGINKV_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind.",
)
@click.option(
    "--port",
    envvar="PLUGINKV_PORT",
    type=int,
    default=8787,
    show_default=True,
    help="Port to bind.",
)
@click.option(
    "--workers",
    envvar="PLUGINKV_WORKERS",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes answering on the port, all on the one database; worker 0 also runs "
    "the plugin host [default: PLUGINKV_WORKERS, else 1].",
)
@click.option(
    "--debug-port",
    envvar="PLUGINKV_DEBUG_PORT",
    type=_DebugPort(),
    default="5003",
    show_default=True,
    help="Port remote-debug Dify plugins connect to (on PLUGINKV_DEBUG_HOST, 127.0.0.1); "
    "0 for any free port, 'off' for no listener.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Serve reads and refuse every write, e.g. while the store is exported "
    "[default: PLUGINKV_READ_ONLY].",
)
@click.option(
    "--log-level",
    envvar="PLUGINKV_LOG_LEVEL",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Least severe message logged, by the service and the plugin host.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="PLUGINKV_ACCESS_LOG",
    default=False,
    show_default=True,
    help="Log one line per HTTP request.",
)
def serve(
    data_dir: Path,
    db: str | None,
    host: str,
    port: int,
    workers: int | None,
    debug_port: int | None,
    read_only: bool,
    log_level: str,
    access_log: bool,
) -> None:
    """Run the storage service (HTTP API under /v1) and the Dify plugin host until SIGTERM."""
    try:
        import uvicorn  # noqa: F401  (here only to fail with the install hint before opening)

        from ..server.app import create_app
    except ImportError as exc:
        raise CommandFailed(
            f"the service needs the server extra: pip install 'pluginkv[server]' ({exc})"
        ) from None
    overrides: dict[str, Any] = {"host": host, "port": port}
    if workers is not None:
        overrides["workers"] = workers
    # Off: no listener, and a PLUGINKV_DEBUG_PORT=off the settings would refuse is overridden.
    overrides["debug_port"] = 0 if debug_port is None else debug_port
    overrides |= {"log_level": log_level, "access_log": access_log}
    if read_only:
        overrides["read_only"] = True
    settings = service_settings(data_dir, db, **overrides)
    listen = debug_port is not None
    if listen:
        _check_debug_port(settings)
    # Opened here, not in the app's startup, so that a store that cannot open
    # (a database down, a read-only file that is missing or not migrated) is
    # one error line and exit 3, not uvicorn's startup traceback.  The app
    # closes it at shutdown: uvicorn ends the process by re-raising SIGTERM
    # once it has stopped, so nothing after uvicorn.run() would run.
    try:
        store = Store(settings)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    if settings.workers == 1:
        app = create_app(settings, store=store, listen_for_plugins=listen, close_store=True)
        _run_service(app, settings, data_dir, listen)
        return
    # Opened above only to fail early (and migrate once); each worker opens its own.
    store.close()
    _run_workers(settings, data_dir, listen)


def _check_debug_port(settings: Settings) -> None:
    """Exit on one line, before anything says "listening on", if the debug port is taken.

    Port 5003 is Dify's own debug port: a Dify running on the same machine holds it.
    """
    address = (settings.debug_host, settings.debug_port)
    try:
        with socket.create_server(address, reuse_port=False):
            pass
    except OSError as exc:
        raise CommandFailed(
            f"cannot listen for remote-debug plugins on {address[0]}:{address[1]}: "
            f"{exc.strerror or exc}; choose another port with --debug-port N "
            "(PLUGINKV_DEBUG_PORT, 0 for any free one) or turn the listener off with "
            "--debug-port off"
        ) from None


def _command_as_typed() -> str:
    """``pluginkv`` if a shell here finds this very command by that name, else its path.

    ``make run`` starts ``.venv/bin/pluginkv`` from a shell whose ``PATH`` lacks it:
    the commands the banner suggests must work when pasted into that shell.
    """
    running = Path(sys.argv[0])
    found = shutil.which("pluginkv")
    if running.name == "pluginkv" and found is not None and Path(found).samefile(running):
        return "pluginkv"
    if running.name != "pluginkv" or not running.exists():
        return f"{sys.executable} -m pluginkv"
    try:
        return str(running.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(running.resolve())


def _run_service(app: Any, settings: Settings, data_dir: Path, listen: bool) -> None:
    """Say where the service listens, then run it under uvicorn until SIGTERM or Ctrl-C."""
    import uvicorn

    protocol = _listener(settings)
    # A write that finds no other request in flight runs on the event loop (write_groups.py).
    app.state.alone = protocol.alone
    _announce(settings, data_dir, listen)
    uvicorn.run(app, host=settings.host, port=settings.port, **_uvicorn_options(settings, protocol))


def _run_workers(settings: Settings, data_dir: Path, listen: bool) -> None:
    """``--workers N``: bind the port here, then fork the workers that answer on it."""
    import tempfile

    import uvicorn

    from ..server.app import create_app
    from ..server.siblings import Siblings
    from ..server.workers import Supervisor

    protocol = _listener(settings)
    # An app named, never loaded: only uvicorn's binding (address family, SO_REUSEADDR).
    binding = uvicorn.Config(
        "pluginkv.server.app:create_app", host=settings.host, port=settings.port
    )
    try:
        listening = binding.bind_socket()
    except SystemExit:  # uvicorn has logged why (the port is taken, ...)
        raise CommandFailed(f"cannot listen on {settings.host}:{settings.port}") from None
    _announce(settings, data_dir, listen)
    # The workers' private sockets: a directory only this user can enter.
    run_dir = Path(tempfile.mkdtemp(prefix="pluginkv-workers-"))

    def work(index: int) -> None:
        siblings = Siblings(index, settings.workers, run_dir)
        app = create_app(
            settings,
            store=Store(settings),
            listen_for_plugins=listen and index == 0,
            close_store=True,
            siblings=siblings,
        )
        app.state.alone = protocol.alone
        server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(settings, protocol)))
        server.run(sockets=[listening, _private_socket(siblings.socket_path(index))])

    try:
        status = Supervisor(settings.workers, work).run()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if status:
        raise SystemExit(status)


def _private_socket(path: Path) -> socket.socket:
    """A Unix socket at ``path`` (replacing one a dead worker left), for its owner only."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    sock.listen(128)
    return sock


def _listener(settings: Settings) -> Any:
    """The HTTP protocol with the listener's limits (httptools lacks them); the process's
    open-file limit raised to fit its connections."""
    from ..server.listener_limits import ListenerLimits, limited_protocol, reserve_file_descriptors

    limits = ListenerLimits.from_settings(settings)
    try:
        reserve_file_descriptors(limits.max_connections)
    except PluginKVError as exc:
        raise PluginKVFailure(exc) from None
    return limited_protocol(limits)


def _announce(settings: Settings, data_dir: Path, listen: bool) -> None:
    host, port = settings.host, settings.port
    database = redact_url(settings.database_url)
    click.echo(f"pluginkv {__version__}: data in {data_dir.resolve()} ({database})")
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    click.echo(f"listening on http://{host}:{port}  (API under /v1, health at /healthz{workers})")
    if settings.read_only:
        click.echo(
            f"read-only ({env_name('read_only')}=true): reads are served, every write is "
            "refused with 503 read_only"
        )
    command = _command_as_typed()
    click.echo(
        f"a token for a plugin: {command} token create --data-dir {data_dir} "
        "--workspace WS --plugin AUTHOR/NAME"
    )
    if listen:
        click.echo(
            f"remote-debug Dify plugins: {settings.debug_host}:{settings.debug_port}, with a "
            f"key from {command} debug-key create --data-dir {data_dir} --workspace WS"
        )
    else:
        click.echo("remote-debug Dify plugins: off (--debug-port off)")


def _uvicorn_options(settings: Settings, protocol: Any) -> dict[str, Any]:
    """uvicorn's settings for the service but the address (the same in every worker)."""
    import uvicorn

    # uvicorn's logging, plus the plugin host's (registrations, refusals, plugin logs).
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    # The access log (its own logger, at INFO) is on or off by its switch alone.
    level = settings.log_level.upper()
    for name in ("uvicorn", "uvicorn.error"):
        log_config["loggers"][name]["level"] = level
    log_config["loggers"]["pluginkv"] = {"handlers": ["default"], "level": level}
    return {
        "log_config": log_config,
        "loop": "uvloop",
        "http": protocol,
        "access_log": settings.access_log,
        "timeout_keep_alive": settings.idle_timeout_seconds,
        "timeout_graceful_shutdown": 30,
    }
