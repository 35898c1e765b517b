"""Limits the HTTP listener enforces below the app, so that no connection can stall the service.

uvicorn's httptools protocol buffers a request's headers without bound (httptools
keeps a header whole until it ends) and waits for them forever; the app only sees a
request once its headers are complete, so neither can be enforced there.  This
protocol, a subclass of uvicorn's, adds per connection:

* a size limit on the request line and headers (``PLUGINKV_MAX_HEADER_BYTES``): the
  bytes are counted as they arrive, and a request still in its headers past the limit
  is answered 431 and closed -- the parser never holds more than the limit;
* a time limit for them (``PLUGINKV_HEADER_TIMEOUT_SECONDS``), from the connection's
  first moment, or from the first byte of a keep-alive connection's next request: a
  request that is late is answered 408 and closed, a connection that sent nothing is
  closed;
* a limit on open connections (``PLUGINKV_MAX_CONNECTIONS``): one past it is answered
  503 as soon as it opens, and closed, so that a flood of connections costs a file
  descriptor each for a moment only;
* a stopping service closes at once the connections whose request only waits for
  changes (``WAITING``: an event stream, a long poll), which would otherwise hold it
  for the whole graceful timeout;
* a connection whose request was answered before its body was read (a 413, a 401 on
  an upload) is closed a second later, instead of reading the rest of the body,
  however large, to keep the connection.

uvicorn's own ``limit_concurrency`` does not fit: it answers 503 only once a request's
headers are complete, so connections that send none still take every descriptor.

It keeps uvicorn's uvloop + httptools path: a request within the limits costs one
timer per connection and a length comparison per read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings, env_name
from ..errors import InvalidArgument
from .errors import CODE_HEADER, error_body

__all__ = ["STOPPING", "WAITING", "ListenerLimits", "limited_protocol", "reserve_file_descriptors"]

# How long a connection stays half-open after the listener's last answer on it.
# Closing a socket whose peer's bytes are still unread makes the kernel send a
# reset, and a reset that arrives before the client read the answer destroys it.
# So the answer goes out with a FIN, and the socket is closed this much later.
# Meanwhile a refused request's bytes are left unread (the kernel's buffers fill
# and the sender stalls), while the rest of a body answered early (a 413) is
# dropped unparsed: a client that sends its whole body before it reads, as
# http.client does, then gets the 413 instead of a broken pipe for a body of some
# tens of MiB, and a larger one is cut off all the same.
CLOSE_GRACE_SECONDS = 1.0

# The ASGI scope key a handler sets while its request only waits for changes.
WAITING = "pluginkv.waiting"
# ... and the key the listener sets on the requests in flight when the service stops.
STOPPING = "pluginkv.stopping"

# The connection limit is logged when it is reached, at most this often: a flood of
# connections must not become a flood of log lines.
LIMIT_LOG_INTERVAL_SECONDS = 60.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    """What one connection may cost before the listener answers and closes it."""

    max_header_bytes: int
    header_timeout_seconds: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ListenerLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_seconds=settings.header_timeout_seconds,
            max_connections=settings.max_connections,
        )


# File descriptors the process needs besides its HTTP connections: the database,
# the debug port's connections, plugin processes' pipes, logs.
OTHER_FILE_DESCRIPTORS = 256


def reserve_file_descriptors(max_connections: int) -> None:
    """Raise the process's open-file limit to fit ``max_connections``, or say why it cannot.

    Past that limit ``accept()`` fails and every new client is locked out, which is
    what the connection limit is there to prevent.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return
    needed = max_connections + OTHER_FILE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise InvalidArgument(
            f"{env_name('max_connections')}={max_connections} needs {needed} open files, "
            f"and this process may open {hard} (ulimit -Hn): lower the setting or raise "
            "the limit"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _refusal(status: str, code: str, message: str, *headers: str) -> bytes:
    body = json.dumps(error_body(code, message)).encode()
    head = [
        f"HTTP/1.1 {status}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        f"{CODE_HEADER.lower()}: {code}",
        *headers,
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class _Refusals:
    """The listener's own answers, built once: they never depend on the request."""

    too_large: bytes
    too_slow: bytes
    too_many: bytes

    @classmethod
    def for_limits(cls, limits: ListenerLimits) -> _Refusals:
        return cls(
            too_large=_refusal(
                "431 Request Header Fields Too Large",
                "headers_too_large",
                f"request line and headers over {limits.max_header_bytes} bytes "
                f"({env_name('max_header_bytes')})",
            ),
            too_slow=_refusal(
                "408 Request Timeout",
                "request_timeout",
                "request line and headers did not arrive within "
                f"{limits.header_timeout_seconds:g} s ({env_name('header_timeout_seconds')})",
            ),
            too_many=_refusal(
                "503 Service Unavailable",
                "too_many_connections",
                f"over {limits.max_connections} open connections "
                f"({env_name('max_connections')}); try again",
                "retry-after: 1",
            ),
        )


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ListenerLimits`; see the module's text."""

    limits: ClassVar[ListenerLimits]
    refusals: ClassVar[_Refusals]
    limit_logged_at: ClassVar[float] = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the request line and headers arriving
        self._head_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._refused = False  # answered for good: what still arrives is ignored

    # -- the connection --------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._log_connection_limit()
            self._refuse(self.refusals.too_many)
            return
        self._head_timer = self.loop.call_later(
            self.limits.header_timeout_seconds, self._head_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        cycle = self.cycle  # the request whose headers came last
        if cycle is not None and cycle.more_body:  # its body: not ours to count
            super().data_received(data)
            return
        budget = self.limits.max_header_bytes - self._head_bytes
        if len(data) > budget:
            # More than the headers may still take: feed what they may, and see whether
            # they end within it (the rest is then body, or the next request).
            view = memoryview(data)
            super().data_received(view[:budget])  # type: ignore[arg-type]
            if self.cycle is cycle:
                if not self.transport.is_closing():
                    self._refuse(self.refusals.too_large)
                return
            self._stop_head_clock()
            self.data_received(view[budget:])  # type: ignore[arg-type]
            return
        self._head_bytes += len(data)
        super().data_received(data)
        if self.cycle is not cycle:
            self._stop_head_clock()
        elif self._head_timer is None:
            # A keep-alive connection's next request that did not come in one read: its
            # clock starts now (until its first byte, uvicorn's keep-alive timeout ran).
            # One that does come whole, as nearly all do, costs no timer.
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )

    def _stop_head_clock(self) -> None:
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    # -- uvicorn's callback ------------------------------------------------------

    def on_response_complete(self) -> None:
        # With no request queued behind it, self.cycle is the one just answered; a
        # body it has not received in full is not read to its end.
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.more_body
            and not self.pipeline
            and not self.transport.is_closing()
        ):
            self.server_state.total_requests += 1
            self._refused = True
            self._close_gracefully(drop_input=True)
            return
        super().on_response_complete()

    def shutdown(self) -> None:
        # A request that only waits for changes (an event stream, a long poll) would
        # hold a stopping service for uvicorn's whole graceful timeout: it is cut now,
        # which its handler sees as the client gone.  Nothing it did needs finishing.
        # One that has not begun to wait yet is told, and does not begin.
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]  # keys of ours
            if scope.get(WAITING):
                self.transport.close()
                return
            scope[STOPPING] = True
        super().shutdown()

    # -- refusing ------------------------------------------------------------------

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0 and not self._answering():
            # Nothing arrived: no one to answer (a browser's preconnect, a port scan).
            self._refused = True
            self.transport.close()
            return
        self._refuse(self.refusals.too_slow)

    def _log_connection_limit(self) -> None:
        now = time.monotonic()
        cls = type(self)
        if now - cls.limit_logged_at >= LIMIT_LOG_INTERVAL_SECONDS:
            cls.limit_logged_at = now
            logger.warning(
                "%d connections open, the most %s allows: new ones are answered 503 "
                "(logged at most once a minute)",
                self.limits.max_connections,
                env_name("max_connections"),
            )

    def _refuse(self, answer: bytes) -> None:
        self._refused = True
        self._stop_head_clock()
        self._unset_keepalive_if_required()
        if self._answering():
            # A pipelined request behind one still being answered: an answer now would
            # land inside that response, and a half-close would cut it.
            self.transport.close()
            return
        self.transport.write(answer)
        self._close_gracefully(drop_input=False)

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _close_gracefully(self, drop_input: bool) -> None:
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        if drop_input:
            self.flow.resume_reading()  # uvicorn pauses it past 64 KiB of unread body
        else:
            self.flow.pause_reading()
        self._close_timer = self.loop.call_later(CLOSE_GRACE_SECONDS, transport.close)


def limited_protocol(limits: ListenerLimits) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.run(http=...)`` for ``limits``."""

    class Protocol(LimitedHttpToolsProtocol):
        pass

    Protocol.limits = limits
    Protocol.refusals = _Refusals.for_limits(limits)
    return Protocol
