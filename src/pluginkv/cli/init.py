"""``pluginkv init``: create a store, the one command besides ``serve`` and ``import`` that does."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import redact_url
from ..store import Store, sqlite_path
from .common import CommandFailed, data_dir_option, engine_errors, service_settings

__all__ = ["init"]


@click.command("init")
@data_dir_option
@click.option(
    "--db",
    metavar="URL",
    help="Create this database, e.g. sqlite:///other.db or postgresql://user@host/dbname "
    "[default: <data-dir>/pluginkv.db, with the data directory's token secret].",
)
def init(data_dir: Path, db: str | None) -> None:
    """Create a store (its database and tables); one that exists is left as it is."""
    from ..services.tokens import load_secret

    settings = service_settings(data_dir, db, create=db is None)
    path = sqlite_path(settings.database_url)
    existed = path is not None and path.is_file()
    with engine_errors():
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandFailed(f"cannot create {path.parent}: {exc.strerror}") from None
        with Store(settings):
            pass
        if db is None:
            load_secret(settings)  # the secret the service signs tokens with
    where = redact_url(settings.database_url)
    click.echo(f"{where} exists already" if existed else f"created {where}")
