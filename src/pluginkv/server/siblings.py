"""The workers of one ``pluginkv serve --workers N`` reaching each other over private Unix sockets.

Every worker serves the app on the shared TCP socket and on a Unix socket of
its own, ``worker-K.sock`` in a directory only the service's user can enter.
Through those sockets:

* the plugin host's routes (``/v1/admin/plugins…``, ``/v1/admin/tools…``,
  ``/v1/admin/endpoints…``, ``/e/…``) that reach a worker other than 0 are
  passed to worker 0, which alone runs the plugins: request and answer
  stream through unchanged, the caller's credentials included, so worker 0
  checks them as if the request had come to it directly;
* ``GET /metrics`` on any worker answers the sum over all workers: the worker
  asks each sibling for its own figures (``Pluginkv-Worker-Metrics: own``)
  and adds them to its own.  A sibling that is restarting is left out of that
  one answer.

The relay speaks HTTP/1.1 with h11 (uvicorn's own dependency), one connection
per request: these routes are administration and plugin calls, not the
storage hot path, which every worker serves itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h11
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["OWN_METRICS_HEADER", "Siblings", "SiblingsFront", "merge_expositions"]

logger = logging.getLogger(__name__)

OWN_METRICS_HEADER = b"pluginkv-worker-metrics"  # "own": this worker's figures only
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade"}
)
_READ_CHUNK = 64 * 1024
_SIBLING_TIMEOUT = 2.0  # seconds a sibling may take to send its metrics


@dataclass(frozen=True)
class Siblings:
    """Worker ``index`` of ``count``, their sockets in ``run_dir``."""

    index: int
    count: int
    run_dir: Path

    def socket_path(self, index: int) -> Path:
        return self.run_dir / f"worker-{index}.sock"

    @property
    def others(self) -> list[int]:
        return [i for i in range(self.count) if i != self.index]


class SiblingsFront:
    """Outermost middleware of a worker: plugin-host routes to worker 0, /metrics summed."""

    def __init__(self, app: ASGIApp, siblings: Siblings, host_routes: Iterable[BaseRoute]) -> None:
        self.app = app
        self.siblings = siblings
        self.host_routes = list(host_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.siblings.index != 0 and self._for_host(scope):
            await relay(self.siblings.socket_path(0), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _for_host(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] != Match.NONE for route in self.host_routes)


async def relay(socket_path: Path, scope: Scope, receive: Receive, send: Send) -> None:
    """Pass one HTTP request to the server on ``socket_path`` and its answer back."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
    except OSError as exc:
        logger.error("worker 0 cannot be reached at %s: %s", socket_path, exc)
        await _unavailable(send)
        return
    try:
        conn = h11.Connection(h11.CLIENT)
        await _send_request(conn, writer, scope, receive)
        await _pass_answer(conn, reader, send)
    except (OSError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
        logger.error("relaying %s %s to worker 0 failed: %s", scope["method"], scope["path"], exc)
        # Once the answer has started it cannot be replaced; the connection then just ends.
        await _unavailable(send)
    finally:
        writer.close()


async def _send_request(
    conn: h11.Connection, writer: asyncio.StreamWriter, scope: Scope, receive: Receive
) -> None:
    headers = [(name, value) for name, value in scope["headers"] if name not in _HOP_BY_HOP]
    names = {name for name, _ in headers}
    if b"host" not in names:
        headers.append((b"host", b"localhost"))
    if b"content-length" not in names:
        headers.append((b"transfer-encoding", b"chunked"))
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    writer.write(conn.send(h11.Request(method=scope["method"], target=target, headers=headers)))
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("the client went away before its request was complete")
        body = message.get("body", b"")
        if body:
            writer.write(conn.send(h11.Data(data=body)))
            await writer.drain()
        more = message.get("more_body", False)
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()


async def _pass_answer(conn: h11.Connection, reader: asyncio.StreamReader, send: Send) -> None:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ_CHUNK))
            continue
        if isinstance(event, h11.Response):
            headers = [(n, v) for n, v in event.headers if n not in _HOP_BY_HOP]
            await send(
                {"type": "http.response.start", "status": event.status_code, "headers": headers}
            )
        elif isinstance(event, h11.Data):
            await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
        elif isinstance(event, h11.EndOfMessage):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        elif isinstance(event, h11.ConnectionClosed):
            raise OSError("worker 0 closed the connection before its answer was complete")


async def _unavailable(send: Send) -> None:
    body = (
        b'{"error":{"code":"unavailable","message":"the worker that runs the plugin host '
        b'cannot be reached; try again"}}'
    )
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
    except Exception:  # the answer had started: nothing more can be said
        pass


# -- /metrics, summed over the workers ------------------------------------------------------
async def sibling_metrics(siblings: Siblings) -> list[str]:
    """The text exposition of each sibling that answers in time."""
    found = await asyncio.gather(
        *(_own_metrics(siblings.socket_path(i)) for i in siblings.others),
        return_exceptions=True,
    )
    texts = []
    for index, text in zip(siblings.others, found, strict=True):
        if isinstance(text, BaseException):
            logger.warning("worker %d left out of /metrics: %s", index, text or type(text).__name__)
        else:
            texts.append(text)
    return texts


async def _own_metrics(socket_path: Path) -> str:
    async with asyncio.timeout(_SIBLING_TIMEOUT):
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            conn = h11.Connection(h11.CLIENT)
            request = h11.Request(
                method="GET",
                target="/metrics",
                headers=[("host", "localhost"), (OWN_METRICS_HEADER.decode(), "own")],
            )
            writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(_READ_CHUNK)
                    conn.receive_data(data)
                elif isinstance(event, h11.Response) and event.status_code != 200:
                    raise OSError(f"answered {event.status_code}")
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return body.decode()
                elif isinstance(event, h11.ConnectionClosed):
                    raise OSError("closed the connection")
        finally:
            writer.close()


def merge_expositions(texts: Iterable[str]) -> bytes:
    """Several processes' text expositions as one: samples with the same name and labels
    added up (counters, histogram buckets, counts and sums), except ``_created``
    timestamps, of which the earliest is kept."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            samples = values.setdefault(merged.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif sample.name.endswith("_created"):
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] += sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)
