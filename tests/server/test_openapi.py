"""The OpenAPI document: it lists exactly the app's routes, and the live app keeps to it.

The schemathesis tests at the bottom fuzz the in-process app from the document it
serves at ``/openapi.json`` and check every answer against it: no 5xx, only
documented statuses, content types, headers and bodies; and, with requests the
document forbids (negative mode), that each is refused with a 4xx.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp

import pluginkv
from pluginkv import InvalidExportFile, NotSupported, Store
from pluginkv.server.app import create_app
from pluginkv.server.console import CONSOLE_PATH
from pluginkv.server.describe import ApiRoute, Operation
from pluginkv.server.docs_page import DOCS_PATH
from pluginkv.server.errors import STATUS
from pluginkv.server.openapi import openapi_document
from pluginkv.services.tokens import Tokens

from . import asgi
from .conftest import SECRET

Auth = Callable[..., dict[str, str]]

HTTP_API_DOC = Path(__file__).parents[2] / "docs" / "http-api.md"
METHODS = {"get", "put", "post", "delete", "head", "patch", "options", "trace"}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _documented_methods(document: dict[str, Any]) -> dict[str, set[str]]:
    methods: dict[str, set[str]] = {}
    for path, method, _ in _operations(document):
        methods.setdefault(path, set()).add(method.upper())
    return methods


def _served_methods(routes: list[Any]) -> dict[str, set[str]]:
    """Each route's OpenAPI path and methods; HEAD only where a route serves it alone.

    Starlette answers HEAD on every GET route by itself; the document lists HEAD
    only where a handler of its own serves it (``/v1/kv/{key}``).
    """
    served: dict[str, set[str]] = {}
    for route in _api_routes(routes):
        assert isinstance(route, Route), f"{route!r}: describe this kind of route in openapi/"
        assert route.methods is not None, f"{route.path} takes any method"
        methods = set(route.methods)
        own_head = isinstance(route, ApiRoute) and "HEAD" in route.operations
        if "GET" in methods and not own_head:
            methods.discard("HEAD")
        served.setdefault(_openapi_path(route.path), set()).update(methods)
    return served


def _server_modules() -> list[ModuleType]:
    import pluginkv.server

    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(pluginkv.server.__path__, "pluginkv.server.")
    ]


def _api_routes(routes: list[Any]) -> list[Any]:
    """The app's routes but the pages': /docs/ shows the document, /ui the console."""
    return [route for route in routes if not route.path.startswith((DOCS_PATH, CONSOLE_PATH))]


def _openapi_path(template: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", template)  # {key:path} -> {key}


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


@pytest.fixture(name="memory_client")
def _memory_client(open_store: Callable[..., Store], tokens: Tokens) -> Iterator[TestClient]:
    with TestClient(create_app(store=open_store("memory"), tokens=tokens)) as client:
        yield client


# -- the document matches the code -----------------------------------------------------------
class TestDocument:
    def test_is_served_without_a_token(self, memory_client: TestClient) -> None:
        response = memory_client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        app: Any = memory_client.app
        assert response.json() == openapi_document(app.state.store.settings)

    def test_every_route_is_documented_with_its_methods_and_nothing_else(
        self, memory_client: TestClient
    ) -> None:
        document = memory_client.get("/openapi.json").json()
        app: Any = memory_client.app
        assert _documented_methods(document) == _served_methods(app.routes)

    def test_every_operation_a_module_describes_is_on_a_route_of_the_app(
        self, memory_client: TestClient
    ) -> None:
        app: Any = memory_client.app
        on_routes = {
            id(operation)
            for route in app.routes
            if isinstance(route, ApiRoute)
            for operation in route.operations.values()
        }
        described = {
            f"{module.__name__}.{name}": operation
            for module in _server_modules()
            for name, operation in vars(module).items()
            if isinstance(operation, Operation)
        }
        assert len(described) >= 20  # the scan found the modules' descriptions
        assert [name for name, op in described.items() if id(op) not in on_routes] == []

    def test_operation_ids_are_unique(self) -> None:
        document = openapi_document(pluginkv.Settings())
        ids = [operation["operationId"] for _, _, operation in _operations(document)]
        assert len(ids) == len(set(ids))

    def test_path_parameters_are_the_route_parameters(self, memory_client: TestClient) -> None:
        document = memory_client.get("/openapi.json").json()
        app: Any = memory_client.app
        for route in _api_routes(app.routes):
            item = document["paths"][_openapi_path(route.path)]
            for method, operation in item.items():
                if method not in METHODS:
                    continue
                parameters = [
                    _resolve(document, p)
                    for p in item.get("parameters", []) + operation.get("parameters", [])
                ]
                in_path = {p["name"] for p in parameters if p["in"] == "path"}
                assert in_path == set(route.param_convertors), (method, route.path)

    def test_limits_are_those_of_the_store_settings(
        self, open_store: Callable[..., Store], tokens: Tokens
    ) -> None:
        store = open_store("memory", max_page_size=7, max_batch_items=3)
        with TestClient(create_app(store=store, tokens=tokens)) as client:
            document = client.get("/openapi.json").json()
        assert document["info"]["version"] == pluginkv.__version__
        parameters = document["paths"]["/v1/keys"]["get"]["parameters"]
        (limit,) = [p for p in parameters if p["name"] == "limit"]
        assert limit["schema"]["maximum"] == 7
        keys = document["components"]["schemas"]["KeyList"]["properties"]["keys"]
        assert keys["maxItems"] == 3

    def test_is_valid_openapi_3_1(self) -> None:
        # The OpenAPI 3.1 meta-schema schemathesis ships, copied from the OpenAPI repository.
        from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

        document = json.loads(json.dumps(openapi_document(pluginkv.Settings())))
        errors = [
            f"{e.instance_path}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(document)
        ]
        assert errors == []

    def test_every_reference_resolves(self) -> None:
        document = openapi_document(pluginkv.Settings())

        def refs(node: object) -> Iterator[str]:
            if isinstance(node, dict):
                for name, value in node.items():
                    if name == "$ref":
                        yield value
                    else:
                        yield from refs(value)
            elif isinstance(node, list):
                for value in node:
                    yield from refs(value)

        for ref in refs(document):
            target: Any = document
            for part in ref.removeprefix("#/").split("/"):
                assert isinstance(target, dict) and part in target, f"{ref} does not resolve"
                target = target[part]

    def test_every_component_is_reached_from_an_operation(self) -> None:
        """No schema, response, parameter or header is described that no route uses."""
        document = openapi_document(pluginkv.Settings())
        reached: set[str] = set()

        def walk(node: object) -> None:
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref not in reached:
                    reached.add(ref)
                    walk(_resolve(document, node))
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(document["paths"])
        components = {
            f"#/components/{kind}/{name}"
            for kind, entries in document["components"].items()
            if kind != "securitySchemes"
            for name in entries
        }
        assert components - reached == set()

    def test_the_bearer_token_is_required_exactly_under_v1(self) -> None:
        document = openapi_document(pluginkv.Settings())
        for path, method, operation in _operations(document):
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert {"401", "403", "503"} <= set(operation["responses"]), (method, path)
            else:
                assert operation["security"] == [], (method, path)
                assert "401" not in operation["responses"], (method, path)

    def test_error_codes_are_those_of_the_error_table(self) -> None:
        """Every (code, status) an operation documents is in docs/http-api.md, and the reverse.

        Except the two the router answers for paths and methods that no operation has
        (``no_such_route`` is also documented where a near-miss path meets an operation's
        template: ``GET /v1/kv/``), and the two the listener answers before any request
        reaches an operation; and two the service never answers: ``invalid_export_file``
        (an import's, raised where the file is read) and ``not_supported`` (the plugin side's).
        """
        table = {
            (code, int(status))
            for code, status in re.findall(
                r"^\| `(\w+)` \| (\d{3})", HTTP_API_DOC.read_text(), re.MULTILINE
            )
        }
        assert {(cls.code, status) for cls, status in STATUS.items()} <= table
        document = openapi_document(pluginkv.Settings())
        documented = set()
        for _, _, operation in _operations(document):
            for status, response in operation["responses"].items():
                content = _resolve(document, response).get("content", {})
                if int(status) >= 400 and "application/json" in content:
                    schema = _resolve(document, content["application/json"]["schema"])
                    error = schema["properties"]["error"]
                    documented |= {
                        (code, int(status)) for code in error["properties"]["code"]["enum"]
                    }
        documented -= {("no_such_route", 404)}
        router = {("no_such_route", 404), ("method_not_allowed", 405)}
        listener = {("headers_too_large", 431), ("too_many_connections", 503)}
        never = {(cls.code, cls.http_status) for cls in (InvalidExportFile, NotSupported)}
        assert documented == table - router - listener - never


# -- inputs the fuzzer seldom draws, which answered 500 --------------------------------------
def _raw_asgi_status(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> int:
    """The status of one request sent as raw ASGI: header bytes reach the app as sent."""
    return int(asgi.call(app, method, path, headers)[0]["status"])


class TestNoServerError:
    def test_non_ascii_digits_in_if_match_are_400(
        self, store: Store, tokens: Tokens, auth: Auth
    ) -> None:
        # '²'.isdigit() is true but int('²') fails; HTTP servers pass obs-text bytes on.
        app = create_app(store=store, tokens=tokens)
        token = auth()["Authorization"].encode()
        headers = [(b"authorization", token), (b"if-match", b"\xb2")]
        assert _raw_asgi_status(app, "PUT", "/v1/kv/k", headers) == 400

    def test_an_over_long_if_match_is_400(self, client: TestClient, auth: Auth) -> None:
        response = client.delete("/v1/kv/k", headers={**auth(), "If-Match": "1" * 5000})
        assert response.status_code == 400

    def test_json_nested_too_deep_is_400(self, client: TestClient, auth: Auth) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        response = client.post("/v1/batch/get", content=body, headers=auth())
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_argument"

    def test_a_ttl_beyond_any_float_is_400(self, client: TestClient, auth: Auth) -> None:
        body = b'{"items": {"a": "AA=="}, "ttl": 1' + b"0" * 400 + b"}"
        response = client.post("/v1/batch/set", content=body, headers=auth())
        assert response.status_code == 400

    def test_a_quota_beyond_int64_is_400(self, client: TestClient, admin: dict[str, str]) -> None:
        body = {"workspace": "ws-1", "plugin": "acme/weather", "quota_bytes": 2**63}
        response = client.put("/v1/admin/quota", json=body, headers=admin)
        assert response.status_code == 400


# -- the live app keeps to the document ------------------------------------------------------
# Small limits, so that generated requests also get 413 (value or body over the limit)
# and the answers are checked too; `acme/full` has no room at all, for 507.
_STORE = pluginkv.open_store(
    "memory://",
    max_value_bytes=256,
    max_batch_bytes=512,
    max_batch_items=8,
    # Not below 100: GET /v1/keys without `limit` asks for 100, refused (400) above the setting.
    max_page_size=100,
    default_quota_bytes=1024,
    plugin_quotas={"acme/full": 0},
    # A long poll with nothing to wait for lasts its `wait`: a fuzzed one is short.
    max_changes_wait_seconds=0.05,
)
# The keys the document gives as examples hold values, so reads find some (200, ETag, TTL).
_STORE.storage(workspace="ws-1", plugin="acme/weather").set("greeting", b"hello")
_STORE.storage(workspace="ws-1", plugin="acme/weather").set(
    "reports/2024/summary.json", b"{}", ttl=3600
)
_TOKENS = Tokens(SECRET, default_ttl=3600)
_AUTHORIZATION = {
    "scope": f"Bearer {_TOKENS.issue(workspace='ws-1', plugin='acme/weather')}",
    "read-only": f"Bearer {_TOKENS.issue(workspace='ws-1', plugin='acme/weather', read_only=True)}",
    "full": f"Bearer {_TOKENS.issue(workspace='ws-1', plugin='acme/full')}",
    "admin": f"Bearer {_TOKENS.issue(admin=True)}",
}

schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(store=_STORE, tokens=_TOKENS),
    config=SchemathesisConfig.from_dict(
        {
            "seed": 20260601,
            # deterministic: derandomized Hypothesis; no example database, so no replays.
            "generation": {"max-examples": 40, "deterministic": True, "database": "none"},
            # 507 is the documented "quota full" answer (docs/http-api.md: 507, not 413, so
            # that a full scope and a too-large value differ by status), not a server fault;
            # status_code_conformance still checks it comes only where documented.
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "507"]}},
        }
    ),
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,  # a 2xx is re-sent without the token and with a wrong one: both must fail
]


def _admin_route(case: schemathesis.Case[Any]) -> bool:
    return case.path.startswith("/v1/admin/")


@schema.parametrize()
@hypothesis.settings(deadline=None)
def test_the_app_keeps_to_the_document(case: schemathesis.Case[Any]) -> None:
    """With the right token: a scope token, the admin token on the admin routes."""
    token = _AUTHORIZATION["admin" if _admin_route(case) else "scope"]
    case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)


@schema.parametrize()
@hypothesis.settings(deadline=None, max_examples=10)
def test_the_app_keeps_to_the_document_with_a_token_that_may_not(
    case: schemathesis.Case[Any],
) -> None:
    """A read-only token, a scope token on the admin routes: the 403s keep to it too."""
    token = _AUTHORIZATION["scope" if _admin_route(case) else "read-only"]
    case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)


@schema.include(operation_id=["putValue", "incr", "batchSet"]).parametrize()
@hypothesis.settings(deadline=None, max_examples=10)
def test_the_app_keeps_to_the_document_when_the_scope_is_full(case: schemathesis.Case[Any]) -> None:
    """A scope without room: the writes that grow it answer 507 as documented."""
    case.call_and_validate(headers={"Authorization": _AUTHORIZATION["full"]}, checks=CHECKS)


# Requests the document forbids (a key too long or with a forbidden character, a
# field of the wrong type, a limit out of range, an unknown body field...): each must
# be refused with a 4xx the document lists, never accepted and never a 5xx.
negative_schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(store=_STORE, tokens=_TOKENS),
    config=SchemathesisConfig.from_dict(
        {
            "seed": 20260601,
            "generation": {
                "mode": "negative",
                "max-examples": 15,
                "deterministic": True,
                "database": "none",
            },
            "checks": {
                "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "507"]},
                "negative_data_rejection": {"expected-statuses": ["4xx"]},
            },
        }
    ),
)

NEGATIVE_CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _without_input() -> list[str]:
    """The operations with nothing to send wrong: no negative case exists for them."""
    document = openapi_document(pluginkv.Settings())
    return [
        operation["operationId"]
        for path, _, operation in _operations(document)
        if not document["paths"][path].get("parameters")
        and not operation.get("parameters")
        and "requestBody" not in operation
    ]


# Plugin endpoints (/e/...) take any path, query and body: they forbid nothing.
@negative_schema.exclude(operation_id=_without_input()).exclude(path_regex="^/e/").parametrize()
@hypothesis.settings(deadline=None)
def test_the_app_refuses_what_the_document_forbids(case: schemathesis.Case[Any]) -> None:
    token = _AUTHORIZATION["admin" if _admin_route(case) else "scope"]
    case.call_and_validate(headers={"Authorization": token}, checks=NEGATIVE_CHECKS)


@pytest.fixture(scope="module", autouse=True)
def _close_the_fuzzed_store() -> Iterator[None]:
    yield
    _STORE.close()
