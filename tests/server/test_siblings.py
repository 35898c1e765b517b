"""The workers' private relay (``siblings.py``), in one process: a uvicorn server on a Unix
socket stands for worker 0, and the relay and the metrics sum are driven directly."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pluginkv.server.siblings import (
    OWN_METRICS_HEADER,
    Siblings,
    SiblingsFront,
    merge_expositions,
    relay,
    sibling_metrics,
)

METRICS = """# HELP pluginkv_http_requests_total Requests.
# TYPE pluginkv_http_requests_total counter
pluginkv_http_requests_total{route="/v1/usage",status="200"} 3.0
pluginkv_http_requests_created{route="/v1/usage",status="200"} 200.0
"""


async def echo(request: Request) -> Response:
    body = await request.body()
    answer = f"{request.method} {request.url.path}?{request.url.query} {len(body)} "
    answer += request.headers.get("authorization", "-")
    return PlainTextResponse(answer, status_code=201, headers={"x-worker": "0"})


async def stream(request: Request) -> Response:
    async def parts() -> Any:
        for i in range(3):
            yield f"part {i}\n".encode()

    return StreamingResponse(parts(), media_type="text/plain")


async def metrics(request: Request) -> Response:
    assert request.headers.get(OWN_METRICS_HEADER.decode()) == "own"
    return PlainTextResponse(METRICS)


@pytest.fixture(name="worker0")
def _worker0(tmp_path: Path) -> Iterator[Siblings]:
    """Worker 0 of two, answering on its private socket; the siblings as worker 1 sees them."""
    app = Starlette(
        routes=[
            Route("/v1/admin/plugins", echo, methods=["GET", "POST"]),
            Route("/e/{rest:path}", stream),
            Route("/metrics", metrics),
        ]
    )
    siblings = Siblings(1, 2, tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(app, uds=str(siblings.socket_path(0)), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "worker 0 did not start"
        time.sleep(0.01)
    yield siblings
    server.should_exit = True
    thread.join(10)


async def _call(app: Any, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }
    chunks = [body[:3], body[3:]] if body else [b""]
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body_out


def test_a_request_and_its_body_reach_worker_0_and_its_answer_comes_back(
    worker0: Siblings,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await relay(worker0.socket_path(0), scope, receive, send)

    status, headers, body = asyncio.run(
        _call(app, "POST", "/v1/admin/plugins?x=1", b"hello world", authorization="Bearer t")
    )
    assert status == 201 and headers[b"x-worker"] == b"0"
    assert body == b"POST /v1/admin/plugins?x=1 11 Bearer t"


def test_a_streamed_answer_comes_back_whole(worker0: Siblings) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await relay(worker0.socket_path(0), scope, receive, send)

    status, _, body = asyncio.run(_call(app, "GET", "/e/hook/path", host="x"))
    assert (status, body) == (200, b"part 0\npart 1\npart 2\n")


def test_only_the_plugin_hosts_routes_go_to_worker_0(worker0: Siblings) -> None:
    async def own(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    front = SiblingsFront(own, worker0, [Route("/v1/admin/plugins", echo)])
    assert asyncio.run(_call(front, "GET", "/v1/admin/plugins"))[0] == 201  # worker 0's
    assert asyncio.run(_call(front, "GET", "/v1/kv/k"))[0] == 204  # this worker's own


def test_worker_0_out_of_reach_is_a_503_saying_so(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await relay(tmp_path / "worker-0.sock", scope, receive, send)

    status, headers, body = asyncio.run(_call(app, "GET", "/v1/admin/plugins"))
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert b"cannot be reached" in body


def test_metrics_of_the_siblings_that_answer_are_added_to_this_workers(
    worker0: Siblings, tmp_path: Path
) -> None:
    three = Siblings(1, 3, worker0.run_dir)  # worker 2 never started: left out
    texts = asyncio.run(sibling_metrics(three))
    assert texts == [METRICS]
    merged = merge_expositions([METRICS, *texts]).decode()
    samples = {
        (s.name, s.labels.get("route")): s.value
        for family in text_string_to_metric_families(merged)
        for s in family.samples
    }
    assert samples[("pluginkv_http_requests_total", "/v1/usage")] == 6.0
    assert samples[("pluginkv_http_requests_created", "/v1/usage")] == 200.0  # the earliest
