"""``Store``: one open database, the settings that govern it, and the handles it gives out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from .backends.base import Backend, ScopeState
from .backends.memory import MemoryBackend
from .backends.read_only import ReadOnlyBackend
from .backends.sqlite import SQLiteBackend
from .config import Settings, env_name
from .errors import InvalidArgument, PluginKVError
from .keys import Scope, check_scope
from .models import Usage
from .storage import Storage
from .watching import ChangeNotifier

__all__ = ["Store", "backend_for_url", "load_settings", "open_store", "sqlite_path"]

Clock = Callable[[], float]
logger = logging.getLogger(__name__)
_PING_SCOPE = Scope("pluginkv", "pluginkv/ping")
_HANDLES_KEPT = 10_000  # scopes whose Storage handle is kept; past it the cache starts over


def open_store(url: str | None = None, *, clock: Clock | None = None, **settings: Any) -> Store:
    """Open the store at ``url`` (default: the ``PLUGINKV_DATABASE_URL`` setting).

    ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
    a plain file path, ``postgresql://user@host:port/dbname`` (needs the
    ``postgres`` extra), or ``memory://``.  Keyword arguments override settings
    by name, e.g. ``open_store(url, default_quota_bytes=1_000_000)``.
    """
    if url is not None:
        settings["database_url"] = url
    return Store(load_settings(**settings), clock=clock)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``overrides``; bad ones raise ``InvalidArgument``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            problems.append(f"{field} ({env_name(field)}): {error['msg']}")
        raise InvalidArgument("invalid setting " + "; ".join(problems)) from None
    except SettingsError as exc:  # an environment variable that is not valid JSON
        raise InvalidArgument(f"invalid setting: {exc} (dict settings take JSON)") from None


def backend_for_url(settings: Settings) -> Backend:
    """Build the backend a database URL names."""
    url = settings.database_url
    if url == "memory://":
        return MemoryBackend()
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_backend(settings)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise InvalidArgument(
            f"unsupported database URL scheme {scheme!r} in {url!r} "
            "(setting PLUGINKV_DATABASE_URL): use sqlite:///path.db, "
            "postgresql://user@host/dbname or memory://"
        )
    else:
        path = url
    if not path:
        raise InvalidArgument(f"database URL {url!r} names no file (setting PLUGINKV_DATABASE_URL)")
    return SQLiteBackend(
        path,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        mmap_bytes=settings.sqlite_mmap_bytes,
        read_only=settings.read_only,
        disk_reserve_bytes=settings.sqlite_disk_reserve_bytes,
        watch_poll_seconds=settings.watch_poll_seconds,
    )


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite database URL (or plain path) names; None for any other URL."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :])
    if "://" in url or not url:
        return None
    return Path(url)


def _postgres_backend(settings: Settings) -> Backend:
    # Imported here: psycopg is an optional extra, and SQLite users never need it.
    try:
        from .backends.postgres import PostgresBackend
    except ImportError as exc:
        raise InvalidArgument(
            f"{settings.database_url.split('://', 1)[0]}:// URLs need the PostgreSQL driver: "
            f"pip install 'pluginkv[postgres]' ({exc})"
        ) from None
    if settings.postgres_pool_max_size < settings.postgres_pool_min_size:
        raise InvalidArgument(
            f"postgres_pool_max_size ({env_name('postgres_pool_max_size')}) is "
            f"{settings.postgres_pool_max_size}, below postgres_pool_min_size "
            f"({env_name('postgres_pool_min_size')}) {settings.postgres_pool_min_size}"
        )
    return PostgresBackend(
        settings.database_url,
        min_size=settings.postgres_pool_min_size,
        max_size=settings.postgres_pool_max_size,
        pool_timeout=settings.postgres_pool_timeout_seconds,
        connect_timeout=settings.postgres_connect_timeout_seconds,
        statement_timeout=settings.postgres_statement_timeout_seconds,
        tcp_timeout=settings.postgres_tcp_timeout_seconds,
        read_only=settings.read_only,
        read_url=settings.postgres_read_url,
        read_wait=settings.postgres_read_wait_seconds,
    )


class Store:
    """A database of every workspace's plugin data; hands out scoped ``Storage`` handles."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: Backend | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.backend = backend if backend is not None else backend_for_url(self.settings)
        if self.settings.read_only and not isinstance(self.backend, ReadOnlyBackend):
            # The one gate every write passes (see backends/read_only.py).
            self.backend = ReadOnlyBackend(self.backend)
        self.clock: Clock = clock if clock is not None else time.time
        self._next_sweep = self.clock() + self.settings.sweep_interval_seconds
        self._handles: dict[tuple[str, str], Storage] = {}
        # Quotas plugins declare for themselves, by who declared (a registration), and the
        # lowest of each scope, which writes on other threads read (replaced, never changed).
        self._declarations: dict[Hashable, tuple[frozenset[Scope], int, str]] = {}
        self._declared_quotas: dict[Scope, tuple[int, str]] = {}
        # Wakes watchers when their scope changes, in this process or (through the
        # backend's listener) another; see watching.py.
        self.notifier = ChangeNotifier(self.backend)

    def __repr__(self) -> str:
        mode = " read-only" if self.settings.read_only else ""
        return f"<Store {self.settings.database_url!r} backend={self.backend.name}{mode}>"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; handles given out stop working, waiting watches end."""
        self.notifier.close()
        self.backend.close()

    def storage(self, *, workspace: str, plugin: str) -> Storage:
        """The storage of ``plugin`` (``author/name``, no version) in ``workspace``."""
        # A handle holds nothing that changes, so one per scope serves every
        # caller: the service asks for one per request, and validating the ids
        # costs more than the SQLite read that follows.
        if type(workspace) is str and type(plugin) is str:
            handle = self._handles.get((workspace, plugin))
            if handle is None:
                handle = Storage(self, check_scope(workspace, plugin))
                if len(self._handles) >= _HANDLES_KEPT:
                    self._handles.clear()
                self._handles[workspace, plugin] = handle
            return handle
        return Storage(self, check_scope(workspace, plugin))

    def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the database answers a query."""
        self.backend.exists(_PING_SCOPE, "ping", self.clock())

    # -- quota -----------------------------------------------------------------
    def quota_for(self, scope: Scope, state: ScopeState) -> tuple[int, str]:
        """The scope's quota in bytes and what sets it, for error messages."""
        if state.quota_override is not None:
            return state.quota_override, f"the quota override of {scope}"
        return self.settings_quota(scope)

    def settings_quota(self, scope: Scope) -> tuple[int, str]:
        """The quota the settings give ``scope`` (or a lower one its plugin declared), and what
        sets it."""
        plugin_quota = self.settings.plugin_quotas.get(scope.plugin)
        if plugin_quota is not None:
            quota, source = plugin_quota, f"setting {env_name('plugin_quotas')}[{scope.plugin!r}]"
        else:
            quota = self.settings.default_quota_bytes
            source = f"setting {env_name('default_quota_bytes')}"
        declared = self._declared_quotas.get(scope)
        if declared is not None and declared[0] < quota:
            return declared
        return quota, source

    def declare_quota(
        self,
        *,
        plugin: str,
        workspaces: Iterable[str],
        quota_bytes: int,
        source: str,
        by: Hashable,
    ) -> None:
        """The quota a plugin asks for itself (a Dify manifest's storage size) in ``workspaces``.

        ``by`` is who declares it: one registration of the plugin, which
        declares again to change its workspaces and withdraws at its end
        (``withdraw_quota``); this replaces what ``by`` declared before.  In
        each of those workspaces the plugin gets the lowest quota declared
        there, only where it is below what the settings give, and a scope's
        own override still wins: a declaration can lower a quota, never raise
        one, and reaches no other workspace.  In memory: declarations end
        with the process.  ``source`` names it in errors.
        """
        scopes = frozenset(check_scope(workspace, plugin) for workspace in workspaces)
        before = self._declarations.pop(by, (frozenset(), 0, ""))[0]
        if scopes:
            self._declarations[by] = (scopes, quota_bytes, source)
        self._settle(before | scopes)

    def withdraw_quota(self, by: Hashable) -> None:
        """End what ``by`` declared with ``declare_quota``; nothing if it declared nothing."""
        declared = self._declarations.pop(by, None)
        if declared is not None:
            self._settle(declared[0])

    def _settle(self, scopes: frozenset[Scope]) -> None:
        """Recompute the lowest declared quota of ``scopes``."""
        for scope in scopes:
            quotas = [(q, s) for within, q, s in self._declarations.values() if scope in within]
            if quotas:
                self._declared_quotas[scope] = min(quotas)
            else:
                self._declared_quotas.pop(scope, None)
            self._handles.pop((scope.workspace, scope.plugin), None)  # they hold their quota

    def set_quota(self, *, workspace: str, plugin: str, quota_bytes: int | None) -> None:
        """Override the quota of one scope; ``None`` returns it to the settings.

        A quota below the current usage refuses further growth but deletes nothing.
        """
        scope = check_scope(workspace, plugin)
        # At most 2**63 - 1: what a SQLite INTEGER holds.
        if quota_bytes is not None and (
            type(quota_bytes) is not int or not 0 <= quota_bytes < 2**63
        ):
            raise InvalidArgument(
                f"quota_bytes must be a non-negative int (below 2**63) or None, got {quota_bytes!r}"
            )
        with self.backend.write() as tx:
            tx.set_quota_override(scope, quota_bytes)

    # -- administration ----------------------------------------------------------
    def scopes(self) -> list[tuple[Scope, Usage]]:
        """Every scope that has stored something, with its usage, by workspace then plugin."""
        now = self.clock()
        with self.backend.read() as tx:
            listed = []
            for scope, state in tx.scopes():
                count, size = tx.expired_totals(scope, now)
                quota, _ = self.quota_for(scope, state)
                usage = Usage(state.bytes_used - size, state.key_count - count, quota)
                listed.append((scope, usage))
        return listed

    def purge(self, *, workspace: str, plugin: str) -> int:
        """Delete every entry of one scope and its quota override; returns the entries removed.

        The scope's version counter stays, so versions from before the purge
        are never given out again.
        """
        scope = check_scope(workspace, plugin)
        with self.backend.write() as tx:
            removed = tx.drop_scope(scope, self.clock())
        self.notifier.changed((scope,))
        return removed

    def revoke_tokens(self, *, workspace: str, plugin: str) -> float:
        """Revoke every token of one scope issued until now; returns the recorded moment.

        Tokens created afterwards work.  Services on this database see the
        revocation within their ``token_revocation_refresh_seconds``.
        """
        scope = check_scope(workspace, plugin)
        # The system clock, not the store's: the moment is compared with the
        # tokens' iat, which the service stamps from the system clock.
        with self.backend.write() as tx:
            return tx.revoke_tokens(scope, time.time())

    def token_revocations(self) -> dict[Scope, float]:
        """Every revoked scope with the moment up to which its tokens are revoked."""
        with self.backend.read() as tx:
            return tx.token_revocations()

    def sweep_expired(self) -> int:
        """Reclaim up to ``sweep_batch_size`` expired rows of any scope; returns how many.

        Each row reclaimed is an ``expire`` change; the change log is trimmed to
        its retention window in the same go (as many changes at most).
        """
        now = self.clock()
        settings = self.settings
        with self.backend.write() as tx:
            swept = tx.sweep_expired(now, settings.sweep_batch_size)
            pruned = tx.prune_changes(
                now - settings.changes_retention_seconds,
                settings.changes_retention_count,
                settings.sweep_batch_size,
            )
        if swept:
            self.notifier.changed(None)
        # A full batch means more are waiting: sweep again on the next write.
        full = max(swept, pruned) >= settings.sweep_batch_size
        self._next_sweep = now + (0.0 if full else self.settings.sweep_interval_seconds)
        return swept

    def after_write(self, now: float) -> None:
        """Called after each committed write: runs the sweeper when it is due.

        The write itself has committed, so a failing sweep must not make it
        look failed: it is logged and tried again after the interval.
        """
        if now >= self._next_sweep and self.settings.sweep_interval_seconds > 0:
            try:
                self.sweep_expired()
            except PluginKVError as exc:
                self._next_sweep = now + self.settings.sweep_interval_seconds
                logger.warning("sweeping expired entries failed: %s", exc)
