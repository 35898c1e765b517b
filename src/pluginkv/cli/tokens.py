"""``pluginkv token create`` and ``token revoke``: bearer tokens for the service."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import env_name, redact_url
from ..keys import check_scope
from .common import (
    data_dir_option,
    engine_errors,
    open_existing_store,
    service_settings,
    signing_tokens,
)

__all__ = ["token"]


@click.group()
def token() -> None:
    """Create and revoke bearer tokens for the service of a local data directory."""


@token.command("create")
@data_dir_option
@click.option("--workspace", help="Workspace the token is for.")
@click.option("--plugin", metavar="AUTHOR/NAME", help="Plugin the token is for.")
@click.option("--ttl", type=float, metavar="SECONDS", help="Lifetime [default: 30 days].")
@click.option("--read-only", is_flag=True, help="The token may read but not write.")
@click.option("--admin", is_flag=True, help="An admin token for /v1/admin instead.")
def token_create(
    data_dir: Path,
    workspace: str | None,
    plugin: str | None,
    ttl: float | None,
    read_only: bool,
    admin: bool,
) -> None:
    """Print a token: for one (workspace, plugin), or with --admin for the admin API."""
    if admin == (workspace is not None or plugin is not None):
        raise click.UsageError("give --workspace and --plugin, or --admin alone")
    if not admin and (workspace is None or plugin is None):
        raise click.UsageError("a scope token needs both --workspace and --plugin")
    settings = service_settings(data_dir, create=False)
    with engine_errors():
        tokens = signing_tokens(data_dir, settings.token_ttl_seconds)
        click.echo(
            tokens.issue(
                workspace=workspace, plugin=plugin, ttl=ttl, read_only=read_only, admin=admin
            )
        )


@token.command("revoke")
@data_dir_option
@click.option(
    "--db",
    metavar="URL",
    help="Database URL of the service, e.g. postgresql://user@host/dbname "
    "[default: <data-dir>/pluginkv.db].",
)
@click.option("--workspace", required=True, help="Workspace whose tokens to revoke.")
@click.option(
    "--plugin", required=True, metavar="AUTHOR/NAME", help="Plugin whose tokens to revoke."
)
def token_revoke(data_dir: Path, db: str | None, workspace: str, plugin: str) -> None:
    """Revoke every token of one (workspace, plugin) created until now; later ones work."""
    settings = service_settings(data_dir, db, create=False)
    with engine_errors():
        check_scope(workspace, plugin)  # before opening, so a typo creates no database
        with open_existing_store(settings.database_url) as store:
            revoked_at = store.revoke_tokens(workspace=workspace, plugin=plugin)
    moment = datetime.fromtimestamp(revoked_at, UTC).isoformat(timespec="microseconds")
    click.echo(
        f"revoked the tokens of {plugin} in workspace {workspace} issued up to {moment}; "
        f"services on {redact_url(settings.database_url)} refuse them within "
        f"{settings.token_revocation_refresh_seconds:g} s "
        f"({env_name('token_revocation_refresh_seconds')}). Create a new token with: "
        f"pluginkv token create --workspace {workspace} --plugin {plugin}"
    )
