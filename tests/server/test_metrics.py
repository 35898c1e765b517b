"""``GET /metrics``: counts by route template, latency, bytes, quota denials; no key leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from pluginkv import Store
from pluginkv.server.app import create_app
from pluginkv.server.metrics import (
    DURATION_BUCKETS,
    UNMATCHED,
    Metrics,
    MetricsMiddleware,
    metrics_route,
)
from pluginkv.services.tokens import Tokens

Auth = Callable[..., dict[str, str]]
KV = "/v1/kv/{key:path}"


def url(key: str) -> str:
    return "/v1/kv/" + quote(key, safe="")


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of an exposition, None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def requests(text: str, route: str, method: str, status: int) -> float | None:
    return value(
        text, "pluginkv_http_requests_total", route=route, method=method, status=str(status)
    )


class TestRequests:
    def test_counted_by_route_template_and_status_and_the_key_never_appears(
        self, client: TestClient, auth: Auth
    ) -> None:
        secret = "tenant-secret-key-8f3a"
        assert client.get(url(secret), headers=auth()).status_code == 404
        assert client.get(url(secret), headers=auth()).status_code == 404
        assert client.put(url(secret), content=b"v", headers=auth()).status_code == 204
        assert client.get(url(secret), headers=auth()).status_code == 200

        text = scrape(client)
        assert requests(text, KV, "GET", 404) == 2
        assert requests(text, KV, "PUT", 204) == 1
        assert requests(text, KV, "GET", 200) == 1
        assert secret not in text
        assert "tenant" not in text

    def test_errors_of_the_handlers_are_counted_with_their_status(
        self, client: TestClient, auth: Auth
    ) -> None:
        assert client.get(url("k")).status_code == 401
        assert client.get("/v1/usage", headers=auth()).status_code == 200
        text = scrape(client)
        assert requests(text, KV, "GET", 401) == 1
        assert requests(text, "/v1/usage", "GET", 200) == 1

    def test_unmatched_paths_share_one_label(self, client: TestClient) -> None:
        assert client.get("/wp-login.php/leaked-path").status_code == 404
        assert client.get("/another/leaked-path").status_code == 404
        text = scrape(client)
        assert requests(text, UNMATCHED, "GET", 404) == 2
        assert "leaked-path" not in text

    def test_a_method_the_route_refuses_is_405_under_its_template(self, client: TestClient) -> None:
        assert client.post(url("k")).status_code == 405
        assert requests(scrape(client), KV, "POST", 405) == 1

    def test_unknown_methods_are_other_not_a_new_label_value(self, client: TestClient) -> None:
        client.request("BREW", url("k"))
        client.request("PROPFIND-1234", url("k"))
        text = scrape(client)
        assert requests(text, KV, "OTHER", 405) == 2
        assert "BREW" not in text
        assert "PROPFIND" not in text

    def test_scrapes_are_counted_too(self, client: TestClient) -> None:
        scrape(client)
        assert requests(scrape(client), "/metrics", "GET", 200) == 1


class TestDuration:
    def test_the_histogram_has_one_observation_per_request(
        self, client: TestClient, auth: Auth
    ) -> None:
        for _ in range(3):
            client.get(url("k"), headers=auth())
        text = scrape(client)
        labels = {"route": KV, "method": "GET"}
        assert value(text, "pluginkv_http_request_duration_seconds_count", **labels) == 3
        assert value(text, "pluginkv_http_request_duration_seconds_bucket", le="+Inf", **labels)
        total = value(text, "pluginkv_http_request_duration_seconds_sum", **labels)
        assert total is not None and total > 0

    def test_buckets_count_every_request_at_or_under_their_bound_whatever_its_status(
        self,
    ) -> None:
        metrics = Metrics()
        for seconds, status in [(0.0001, 200), (0.0003, 404), (0.002, 200), (20.0, 500)]:
            metrics.observe("/r", "GET", status, seconds, 0, 0)
        text = metrics.exposition().decode()
        labels = {"route": "/r", "method": "GET"}

        def bucket(le: str) -> float | None:
            return value(text, "pluginkv_http_request_duration_seconds_bucket", le=le, **labels)

        assert [bucket("0.0001"), bucket("0.0005"), bucket("0.0025"), bucket("10.0")] == [
            1,
            2,
            3,
            3,
        ]
        assert bucket("+Inf") == value(
            text, "pluginkv_http_request_duration_seconds_count", **labels
        )
        assert bucket("+Inf") == 4
        assert value(text, "pluginkv_http_request_duration_seconds_sum", **labels) == pytest.approx(
            20.0024
        )
        assert requests(text, "/r", "GET", 404) == 1

    def test_buckets_go_from_100_microseconds_to_10_seconds(self) -> None:
        assert DURATION_BUCKETS[0] == 0.0001
        assert DURATION_BUCKETS[-1] == 10.0
        assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)


class TestBytes:
    def test_bodies_in_and_out_are_counted(self, client: TestClient, auth: Auth) -> None:
        value_ = bytes(range(256)) * 5
        assert client.put(url("k"), content=value_, headers=auth()).status_code == 204
        assert client.get(url("k"), headers=auth()).content == value_
        text = scrape(client)
        assert value(text, "pluginkv_http_request_bytes_total", route=KV, method="PUT") == 1280
        assert value(text, "pluginkv_http_response_bytes_total", route=KV, method="GET") == 1280

    def test_a_chunked_request_body_is_counted_from_what_arrives(
        self, client: TestClient, auth: Auth
    ) -> None:
        def chunks() -> Iterator[bytes]:
            yield b"a" * 100
            yield b"b" * 23

        assert client.put(url("k"), content=chunks(), headers=auth()).status_code == 204
        text = scrape(client)
        assert value(text, "pluginkv_http_request_bytes_total", route=KV, method="PUT") == 123

    def test_json_bodies_are_counted_exactly(self, client: TestClient, auth: Auth) -> None:
        response = client.post("/v1/batch/get", json={"keys": ["a"]}, headers=auth())
        assert response.status_code == 200
        sent = len(response.request.content)
        text = scrape(client)
        labels = {"route": "/v1/batch/get", "method": "POST"}
        assert value(text, "pluginkv_http_request_bytes_total", **labels) == sent
        assert value(text, "pluginkv_http_response_bytes_total", **labels) == len(response.content)


class TestQuotaDenials:
    def test_a_507_increments_quota_denials(
        self, open_store: Callable[..., Store], tokens: Tokens, auth: Auth
    ) -> None:
        app = create_app(store=open_store("memory", default_quota_bytes=10), tokens=tokens)
        with TestClient(app) as client:
            assert value(scrape(client), "pluginkv_quota_denials_total") == 0
            assert client.put(url("small"), content=b"12345", headers=auth()).status_code == 204
            assert client.put(url("big"), content=b"x" * 100, headers=auth()).status_code == 507
            text = scrape(client)
        assert value(text, "pluginkv_quota_denials_total") == 1
        assert requests(text, KV, "PUT", 507) == 1
        assert requests(text, KV, "PUT", 204) == 1


class TestWriteGroups:
    def test_every_committed_write_is_counted_in_a_group(
        self, client: TestClient, auth: Auth
    ) -> None:
        for i in range(3):
            assert client.put(url(f"k{i}"), content=b"v", headers=auth()).status_code == 204
        assert client.delete(url("k0"), headers=auth()).status_code == 204
        text = scrape(client)
        assert value(text, "pluginkv_write_group_size_sum") == 4
        assert value(text, "pluginkv_write_group_size_count") == 4  # one at a time: groups of 1


class TestEndpoint:
    def test_served_without_a_token_in_the_text_format(self, client: TestClient) -> None:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPE_LATEST
        assert "# TYPE pluginkv_http_requests_total counter" in response.text

    def test_each_app_has_its_own_registry(
        self, open_store: Callable[..., Store], tokens: Tokens
    ) -> None:
        store = open_store("memory")
        first, second = (
            create_app(store=store, tokens=tokens),
            create_app(store=store, tokens=tokens),
        )
        assert first.state.metrics.registry is not second.state.metrics.registry
        with TestClient(first) as one, TestClient(second) as two:
            one.get("/healthz")
            one.get("/healthz")
            two.get("/healthz")
            assert requests(scrape(one), "/healthz", "GET", 200) == 2
            assert requests(scrape(two), "/healthz", "GET", 200) == 1


class TestMiddleware:
    def test_an_unhandled_exception_counts_as_500(self) -> None:
        async def boom(request: Request) -> Response:
            raise RuntimeError("boom")

        routes = [Route("/boom/{id}", boom), metrics_route]
        metrics = Metrics(routes)
        app = Starlette(routes=routes, middleware=[Middleware(MetricsMiddleware, metrics=metrics)])
        app.state.metrics = metrics
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/boom/1").status_code == 500
            assert requests(scrape(client), "/boom/{id}", "GET", 500) == 1

    def test_the_route_falls_back_to_the_endpoint_when_scope_has_no_route(self) -> None:
        async def handler(request: Request) -> Response:
            return Response()

        metrics = Metrics([Route("/things/{id}", handler)])
        assert metrics.route_of({"type": "http", "endpoint": handler}) == "/things/{id}"
        assert metrics.route_of({"type": "http"}) == UNMATCHED

    def test_streamed_responses_pass_through_unbuffered_and_counted(self) -> None:
        metrics = Metrics()
        seen: list[Message] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for chunk in (b"ab", b"cde"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                # Forwarded before the app goes on: nothing is held back.
                assert seen[-1]["body"] == chunk
            await send({"type": "http.response.body", "body": b""})

        async def receive() -> Message:
            return {"type": "http.request", "body": b"xyz", "more_body": False}

        async def send(message: Message) -> None:
            seen.append(message)

        scope: Scope = {"type": "http", "method": "GET", "path": "/s"}
        asyncio.run(MetricsMiddleware(app, metrics)(scope, receive, send))
        assert len(seen) == 4
        text = metrics.exposition().decode()
        assert value(text, "pluginkv_http_response_bytes_total", route=UNMATCHED, method="GET") == 5
        assert requests(text, UNMATCHED, "GET", 200) == 1

    def test_head_responses_count_no_body_bytes(self, client: TestClient, auth: Auth) -> None:
        client.head("/v1/keys", headers=auth())
        text = scrape(client)
        assert requests(text, "/v1/keys", "HEAD", 200) == 1
        labels = {"route": "/v1/keys", "method": "HEAD"}
        assert value(text, "pluginkv_http_response_bytes_total", **labels) == 0
