"""``create_app``: the ASGI application of the storage service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from ..config import Settings
from ..host.plugin_host import PluginHost
from ..services.readers import Readers
from ..services.tokens import Tokens, load_secret
from ..services.write_groups import WriteQueue
from ..store import Store
from .console import console_routes
from .docs_page import docs_routes
from .errors import exception_handlers
from .host_routes import host_routes
from .kv import KeyValueFront
from .metrics import Metrics, MetricsMiddleware
from .openapi import api_routes
from .siblings import Siblings, SiblingsFront

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    tokens: Tokens | None = None,
    listen_for_plugins: bool = False,
    close_store: bool = False,
    siblings: Siblings | None = None,
) -> Starlette:
    """The service on ``settings`` (default: from the environment).

    A ``store`` passed in is used as is and left open (unless ``close_store``:
    then the app closes it at shutdown); otherwise the app opens the settings'
    database at startup and closes it at shutdown.  With
    ``listen_for_plugins`` (what ``pluginkv serve`` does) the app also accepts
    remote-debug Dify plugins on the ``debug_host:debug_port`` setting while it
    runs; without it, it only tracks plugins that something else connects.
    ``siblings``: this app is one worker of ``pluginkv serve --workers N``
    (``workers.py``); the plugin host's routes then go to worker 0.
    """
    settings = settings if settings is not None else (store.settings if store else Settings())
    if tokens is None:
        tokens = Tokens(load_secret(settings), default_ttl=settings.token_ttl_seconds)
    # Every replica on one database honours the revocations any of them (or
    # the CLI) records there; the store is read when the app has one.
    tokens.follow_revocations(
        lambda: app.state.store.token_revocations(),
        refresh_seconds=settings.token_revocation_refresh_seconds,
    )
    interval = settings.token_revocation_refresh_seconds

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = store is None or close_store
        app.state.store = Store(settings) if store is None else store
        app.state.started_at = time.time()
        app.state.writer = writer = _writer(settings, metrics)
        # Set by the listener (``pluginkv serve``): whether a request is the only one in flight.
        writer.alone = getattr(app.state, "alone", None)
        app.state.readers = readers = _readers(settings)
        refresher = await _follow_revocations(tokens, app.state.store, readers, interval)
        host: PluginHost = app.state.host
        await host.start(listen=listen_for_plugins)
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            await host.stop()  # plugins go before the threads their storage calls use
            readers.shutdown()
            writer.shutdown()  # queued writes finish before the store closes
            if owned:
                app.state.store.close()

    all_routes = [*api_routes]  # each with its description (describe.py)
    metrics = Metrics(all_routes)  # a registry of its own per app
    # The pages last: the router tries routes in order, so the API's routes
    # match before any of them and the console costs an API request nothing.
    all_routes += [*docs_routes(), *console_routes()]
    app = Starlette(
        routes=all_routes,
        # KeyValueFront serves single keys before the router and does its own
        # metrics; both sit inside Starlette's ServerErrorMiddleware (500s).
        middleware=[
            *(
                [Middleware(SiblingsFront, siblings=siblings, host_routes=host_routes)]
                if siblings is not None and siblings.index != 0
                else []
            ),
            Middleware(KeyValueFront, metrics=metrics),
            Middleware(MetricsMiddleware, metrics=metrics),
        ],
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    # A near-miss path answers 404 with a hint (hints.py), never a redirect
    # that a client would follow with its method and body.
    app.router.redirect_slashes = False
    app.state.metrics = metrics
    app.state.siblings = siblings
    # Replaced at each startup; these serve apps run without lifespan.
    app.state.writer = _writer(settings, metrics)
    app.state.readers = _readers(settings)
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.started_at = time.time()  # uptime in GET /v1/admin/info; reset at startup
    app.state.host = PluginHost(
        settings,
        tokens,
        store=lambda: app.state.store,
        writer=lambda: app.state.writer,
        readers=lambda: app.state.readers,
    )
    if store is not None:
        app.state.store = store
    return app


async def _follow_revocations(
    tokens: Tokens, store: Store, readers: Readers, interval: float
) -> asyncio.Task[None] | None:
    """For a database server, re-read the token revocations on a reader thread.

    ``verify`` runs on the event loop: there a read that waits on an
    unreachable server would stall every request once per interval.  An
    embedded database answers in microseconds, so ``verify`` re-reads inline.
    The first read is done before the app serves, so a restarted replica never
    accepts a revoked token.
    """
    backend = store.backend
    if not backend.reads_block:
        return None
    tokens.follow_revocations(store.token_revocations, refresh_seconds=interval, inline=False)
    await readers.run(backend, tokens.refresh_revocations)

    async def refresh_forever() -> None:
        while True:
            await asyncio.sleep(max(interval, _MIN_REFRESH_SECONDS))
            try:
                await readers.run(backend, tokens.refresh_revocations)
            except Exception:  # it logs database errors itself; nothing may end the loop
                logger.exception("refreshing the token revocations failed")

    return asyncio.create_task(refresh_forever())


_MIN_REFRESH_SECONDS = 0.05  # "every request" (0) on a server: as often as this


def _readers(settings: Settings) -> Readers:
    """Threads for reads that wait on a database server: one per pooled connection."""
    return Readers(threads=settings.postgres_pool_max_size)


def _writer(settings: Settings, metrics: Metrics) -> WriteQueue:
    """Where writes run: one thread for SQLite, several for a database server (``WriteQueue``)."""
    return WriteQueue(
        max_group=settings.write_group_max,
        threads=settings.postgres_pool_max_size,  # for a database server's writes
        on_group=metrics.write_groups.observe,
        on_loop_max=settings.write_on_loop_max_seconds,
    )
