"""Prometheus metrics of the service: a pure-ASGI middleware and ``GET /metrics``.

Every label value comes from a closed set, so the number of series stays
bounded whatever clients send:

- ``route`` is the route *template* (``/v1/kv/{key:path}``), never the
  concrete path: keys would explode cardinality and leak into dashboards.
  Requests that match no route are ``unmatched``.
- ``method`` is one of the standard methods, anything else is ``OTHER``.
- ``status`` is the status the application sent.

``/metrics`` needs no token.  It exposes no keys, values, workspaces or
plugins, only route templates and counts; operators restrict it at the network
level like any other scrape endpoint.

Each app has its own ``CollectorRegistry`` (``app.state.metrics.registry``),
so several apps in one process, as in the tests, never share or collide.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import QuotaExceeded
from .describe import ApiRoute, Operation
from .siblings import OWN_METRICS_HEADER, merge_expositions, sibling_metrics

__all__ = [
    "DURATION_BUCKETS",
    "QUOTA_DENIED_STATUS",
    "UNMATCHED",
    "Metrics",
    "MetricsMiddleware",
    "metrics_route",
]

UNMATCHED = "unmatched"
OTHER_METHOD = "OTHER"
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
QUOTA_DENIED_STATUS = QuotaExceeded.http_status

# From 100 µs (a memory-backend hit) to 10 s (a huge batch on a slow disk).
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

WRITE_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The "le" labels of DURATION_BUCKETS, as prometheus-client writes them (repr of the float).
_BOUNDS = [repr(float(bound)) for bound in DURATION_BUCKETS] + ["+Inf"]


class _Series:
    """What one (route, method, status) has seen; plain numbers, read at scrape time."""

    __slots__ = ("buckets", "count", "received", "seconds", "sent")

    def __init__(self) -> None:
        self.count = 0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.seconds = 0.0
        self.received = 0
        self.sent = 0


class Metrics:
    """The collectors of one app.

    Requests are counted into plain numbers per (route, method, status) and
    turned into Prometheus families only when ``/metrics`` is scraped:
    prometheus-client's labelled children take a lock per update, five per
    request, which cost 10-15 µs of a GET's server time.
    """

    def __init__(self, routes: Iterable[BaseRoute] = ()) -> None:
        self.registry = CollectorRegistry()
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._lock = threading.Lock()  # the service observes from one thread; tests from more
        self.registry.register(_RequestCollector(self))
        # No labels, so the series exists (at 0) from startup and alerts on it
        # need no absent() dance; per route it is requests_total{status="507"}.
        self.quota_denials = Counter(
            "pluginkv_quota_denials",
            "Writes refused because the scope's quota is full (status 507).",
            registry=self.registry,
        )
        self.write_groups = Histogram(
            "pluginkv_write_group_size",
            "Writes committed together in one transaction (setting PLUGINKV_WRITE_GROUP_MAX).",
            buckets=WRITE_GROUP_BUCKETS,
            registry=self.registry,
        )
        # For a Starlette that does not put the matched route in scope["route"].
        self._templates: dict[Callable[..., Any], str] = {}
        for route in routes:
            if isinstance(route, Route):
                self._templates.setdefault(route.endpoint, route.path)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that handled ``scope``, or ``unmatched``.

        The router already matched the request, so this never matches again:
        Starlette's router stores the matched ``Route`` in ``scope["route"]``
        (also for the partial match that answers 405), and a plain dict lookup
        of ``scope["endpoint"]`` covers releases that do not.  Both are O(1),
        where re-running ``route.matches(scope)`` would cost a regex per route
        per request.
        """
        route = scope.get("route")
        if route is not None:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                return path
        endpoint = scope.get("endpoint")
        if endpoint is not None:
            return self._templates.get(endpoint, UNMATCHED)
        return UNMATCHED

    def observe(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        received: int,
        sent: int,
    ) -> None:
        """Record one finished request."""
        key = (route, method, status)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                # Bounded: routes x METHODS x statuses the app sends.
                series = self._series[key] = _Series()
            series.count += 1
            series.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            series.seconds += seconds
            series.received += received
            series.sent += sent
        if status == QUOTA_DENIED_STATUS:
            self.quota_denials.inc()

    def snapshot(self) -> list[tuple[tuple[str, str, int], _Series]]:
        """A consistent copy of every series, for one scrape."""
        with self._lock:
            copies = []
            for key, series in self._series.items():
                copy = _Series()
                copy.count, copy.seconds = series.count, series.seconds
                copy.received, copy.sent = series.received, series.sent
                copy.buckets = list(series.buckets)
                copies.append((key, copy))
        return copies

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _RequestCollector(Collector):
    """The request families, built from ``Metrics``'s numbers at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "pluginkv_http_requests",
            "HTTP requests by route template, method and status.",
            labels=["route", "method", "status"],
        )
        duration = HistogramMetricFamily(
            "pluginkv_http_request_duration_seconds",
            "Time from the request reaching the app to the last byte of its response.",
            labels=["route", "method"],
        )
        received = CounterMetricFamily(
            "pluginkv_http_request_bytes",
            "Request body bytes received.",
            labels=["route", "method"],
        )
        sent = CounterMetricFamily(
            "pluginkv_http_response_bytes", "Response body bytes sent.", labels=["route", "method"]
        )
        by_route: dict[tuple[str, str], _Series] = {}
        for (route, method, status), series in self._metrics.snapshot():
            requests.add_metric([route, method, str(status)], series.count)
            total = by_route.setdefault((route, method), _Series())
            total.count += series.count
            total.seconds += series.seconds
            total.received += series.received
            total.sent += series.sent
            total.buckets = [a + b for a, b in zip(total.buckets, series.buckets, strict=True)]
        for (route, method), total in sorted(by_route.items()):
            cumulative = list(accumulate(total.buckets))
            bounds = _BOUNDS
            duration.add_metric(
                [route, method],
                buckets=list(zip(bounds, cumulative, strict=True)),
                sum_value=total.seconds,
            )
            received.add_metric([route, method], total.received)
            sent.add_metric([route, method], total.sent)
        yield from (requests, duration, received, sent)


class MetricsMiddleware:
    """Pure ASGI, so streamed bodies pass through unbuffered.

    Placed as user middleware, it sits inside Starlette's ServerErrorMiddleware
    and outside its ExceptionMiddleware: a ``PluginKVError`` reaches it as the
    response its handler made (507 for a full quota), an unhandled exception as
    the 500 the client gets.  Metrics are updated once per request, when the
    app returns, not once per body chunk.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        method: str = scope["method"]
        if method not in METHODS:
            method = OTHER_METHOD
        # A HEAD response body is never sent on the wire (the server drops it).
        count_response = method != "HEAD"
        status = 500  # unless the app starts a response, ServerErrorMiddleware sends 500
        received = 0
        sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.body":
                if count_response:
                    sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.observe(
                self.metrics.route_of(scope),
                method,
                status,
                perf_counter() - start,
                received,
                sent,
            )


async def serve_metrics(request: Request) -> Response:
    """``GET /metrics``: the text exposition format of this app's registry."""
    metrics: Metrics = request.app.state.metrics
    own = metrics.exposition()
    siblings = getattr(request.app.state, "siblings", None)
    if siblings is None or request.headers.get(OWN_METRICS_HEADER.decode()) == "own":
        return Response(own, media_type=CONTENT_TYPE_LATEST)
    # Under ``serve --workers N``: the service's figures, every worker's added up.
    texts = [own.decode(), *await sibling_metrics(siblings)]
    return Response(merge_expositions(texts), media_type=CONTENT_TYPE_LATEST)


METRICS = Operation(
    "metrics",
    "health",
    "Prometheus metrics",
    description="The Prometheus text exposition format: requests by route template, method "
    "and status, durations, body bytes, quota denials. No keys, values, workspaces or "
    "plugins appear in it.",
    public=True,
    responses={
        "200": {
            "description": "The metrics of the service (under `serve --workers N`, the sum "
            "over its workers).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)

metrics_route = ApiRoute("/metrics", GET=(serve_metrics, METRICS))
