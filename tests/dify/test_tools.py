"""Tool calls: credentials, parameter defaults, and messages streamed as the tool sends them.

Through the example plugin on the real SDK, on both transports (a remote
plugin's declarations come from its registration, an installed one's from
its YAML files), and ``with_defaults`` on its own for the casts.  The
example's ``wait`` op sends a message, then waits until a key the test sets
exists: whatever the caller reads before the test sets it came before the
tool finished.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
import uuid
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from pluginkv import InvalidArgument
from pluginkv.cli import main
from pluginkv.host.tools import with_declared_credentials, with_defaults

from .conftest import EXAMPLE, PLUGIN_ID, Example, HostService, Served

Ws = tuple[str, str]


def _invoke(service: HostService, workspace: str, **body: Any) -> tuple[int, Any]:
    """The example's kv tool for ``workspace``: its JSON answer, or the error body."""
    request = {"workspace": workspace, "plugin": PLUGIN_ID, "provider": "storage_tool"}
    return _call(service, request | {"tool": "kv", **body})


def _call(service: HostService, request: dict[str, Any]) -> tuple[int, Any]:
    """A tool call's one JSON answer, or the error body."""
    status, answer = service.call("POST", "/v1/admin/tools/invoke", request)
    if status != 200:
        return status, json.loads(answer)["error"]
    (line,) = answer.splitlines()
    return status, json.loads(line)["message"]["json_object"]


def _release(service: HostService, workspace: str, key: str, value: bytes = b"go") -> None:
    service.store.storage(workspace=workspace, plugin=PLUGIN_ID).set(key, value)


def _cli(service: HostService, workspace: str, *options: str, example: Example = EXAMPLE) -> Any:
    args = ["tool", "invoke", "--url", service.url, "--data-dir", str(service.data_dir)]
    args += ["--workspace", workspace, "--plugin", example.plugin, "--provider", example.provider]
    return CliRunner().invoke(main, [*args, "--tool", "kv", *options])


@pytest.mark.usefixtures("ws1_plugin")
class TestCredentials:
    def test_the_tool_gets_the_credentials_and_their_type_as_given(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """As Dify's daemon sends them: self.runtime.credentials and credential_type."""
        credentials = {"api_key": "sk-1", "region": "eu", "retries": 3, "strict": True}
        status, answer = _invoke(
            service,
            workspaces[0],
            parameters={"op": "credentials"},
            credentials=credentials,
            credential_type="oauth2",
        )
        assert status == 200
        assert (answer["credentials"], answer["credential_type"]) == (credentials, "oauth2")

    def test_without_credentials_the_tool_gets_the_declared_defaults_as_an_api_key(
        self, service: HostService, workspaces: Ws
    ) -> None:
        status, answer = _invoke(service, workspaces[0], parameters={"op": "credentials"})
        # The provider declares region with a default (stdio: its YAML; TCP: the SDK's
        # registration), and api_key without one.
        assert (status, answer["credentials"], answer["credential_type"]) == (
            200,
            {"region": "eu"},
            "api-key",
        )

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            pytest.param({"credentials": "sk-1"}, "'credentials' must be a dict", id="string"),
            pytest.param(
                {"credentials": {"api_key": {"value": "sk-1"}}},
                "credential 'api_key' must be a string, a number, a boolean or null, not an object",
                id="nested",
            ),
            pytest.param({"credentials": {"keys": ["a"]}}, "not an array", id="array"),
            pytest.param({"credentials": {"": "x"}}, "non-empty strings", id="empty-name"),
            pytest.param({"credential_type": "bearer"}, "api-key, oauth2, unauthorized", id="type"),
        ],
    )
    def test_bad_credentials_are_400_and_the_tool_never_runs(
        self, service: HostService, fields: dict[str, Any], message: str
    ) -> None:
        """The tool would store the key: nothing is stored, the plugin got nothing."""
        parameters = {"op": "set", "key": "bad-credentials", "value": "x"}
        status, error = _invoke(service, "ws-1", parameters=parameters, **fields)
        assert (status, error["code"]) == (400, "invalid_argument")
        assert message in error["message"]
        stored = service.store.storage(workspace="ws-1", plugin=PLUGIN_ID)
        assert stored.get("bad-credentials") is None

    def test_cli_passes_credentials_and_their_type(self, service: HostService) -> None:
        result = _cli(
            service,
            "ws-1",
            "--params",
            '{"op": "credentials"}',
            "--credentials",
            '{"api_key": "sk-2"}',
            "--credential-type",
            "unauthorized",
        )
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)["message"]["json_object"]
        assert (answer["credentials"], answer["credential_type"]) == (
            {"api_key": "sk-2"},
            "unauthorized",
        )

    @pytest.mark.parametrize(
        ("credentials", "message"),
        [
            pytest.param("{api_key: 1}", "--credentials is not JSON", id="not-json"),
            pytest.param('["sk-1"]', "--credentials must be a JSON object", id="array"),
            pytest.param('{"k": {"v": 1}}', "credential 'k' must be a string", id="nested"),
        ],
    )
    def test_cli_refuses_bad_credentials_before_calling_the_service(
        self, credentials: str, message: str
    ) -> None:
        """Nothing listens at the URL: the error is about the credentials, not the service."""
        args = ["--url", "http://127.0.0.1:9", "--workspace", "ws-1", "--plugin", PLUGIN_ID]
        args += ["--provider", "storage_tool", "--tool", "kv", "--credentials", credentials]
        result = CliRunner().invoke(main, ["tool", "invoke", *args])
        assert result.exit_code == 3
        assert result.stderr.startswith(f"error: {message}")


@pytest.mark.usefixtures("ws1_plugin")
class TestParameterDefaults:
    def test_declared_defaults_fill_in_what_the_call_leaves_out(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """Typed as declared on both transports: the boolean's false is false, not 0."""
        status, answer = _invoke(service, workspaces[0], parameters={"op": "params"})
        assert status == 200
        assert answer["parameters"] == {
            "op": "params",
            "encoding": "utf-8",
            "step": 1,
            "missing_ok": False,
        }

    def test_given_parameters_and_undeclared_ones_pass_as_given(
        self, service: HostService, workspaces: Ws
    ) -> None:
        given = {"op": "params", "encoding": "latin-1", "step": 5, "missing_ok": True, "x": [1]}
        status, answer = _invoke(service, workspaces[0], parameters=given)
        assert (status, answer["parameters"]) == (200, given)

    def test_a_null_parameter_gets_its_default(self, service: HostService) -> None:
        status, answer = _invoke(service, "ws-1", parameters={"op": "params", "step": None})
        assert (status, answer["parameters"]["step"]) == (200, 1)

    def test_the_tool_works_with_its_defaults(self, service: HostService, workspaces: Ws) -> None:
        """count adds the default step; get of a missing key honours missing_ok's default."""
        ws, _ = workspaces
        first = _invoke(service, ws, parameters={"op": "count", "key": "by-default"})[1]
        second = _invoke(service, ws, parameters={"op": "count", "key": "by-default"})[1]
        assert second["count"] == first["count"] + 1
        answer = _invoke(service, ws, parameters={"op": "get", "key": "absent-key"})[1]
        assert answer["error"].startswith("load data failed")

    def test_a_missing_required_parameter_is_400_naming_it(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """Refused by the host: the tool would have failed on it (a 502)."""
        status, error = _invoke(service, workspaces[0], parameters={"key": "k"})
        assert (status, error["code"]) == (400, "invalid_argument")
        assert error["message"] == (
            f"tool storage_tool/kv of {PLUGIN_ID} needs the parameter 'op': "
            "required, and declared without a default"
        )

    def test_cli_reports_a_missing_required_parameter(self, service: HostService) -> None:
        result = _cli(service, "ws-1", "--params", '{"key": "k"}')
        assert result.exit_code == 3
        assert result.stderr.startswith(
            f"error: tool storage_tool/kv of {PLUGIN_ID} needs the parameter 'op'"
        )


@pytest.mark.usefixtures("ws1_plugin")
class TestStreaming:
    def test_the_first_message_arrives_before_the_tool_finishes(
        self, service: HostService, workspaces: Ws
    ) -> None:
        ws, key = workspaces[0], f"release-{uuid.uuid4().hex}"
        body: dict[str, Any] = {"workspace": ws, "plugin": PLUGIN_ID, "tool": "kv"}
        body |= {"provider": "storage_tool", "parameters": {"op": "wait", "key": key}}
        connection = http.client.HTTPConnection(
            urllib.parse.urlsplit(service.url).netloc, timeout=60
        )
        try:
            connection.request(
                "POST",
                "/v1/admin/tools/invoke",
                json.dumps(body),
                {"Authorization": f"Bearer {service.admin}"},
            )
            response = connection.getresponse()
            assert (response.status, response.getheader("content-type")) == (
                200,
                "application/x-ndjson",
            )
            first = json.loads(response.readline())
            assert first["message"] == {"text": f"waiting for {key}"}
            _release(service, ws, key)  # only now can the tool finish
            (last,) = [json.loads(line) for line in response.read().splitlines()]
        finally:
            connection.close()
        assert last["message"]["json_object"] == {"op": "wait", "key": key, "released": "go"}

    def test_a_tool_that_fails_after_its_first_message_ends_with_an_error_line(
        self, service: HostService
    ) -> None:
        """The status went out with the first message: the error is the last line."""
        key = f"release-{uuid.uuid4().hex}"
        _release(service, "ws-1", key, b"fail")
        body: dict[str, Any] = {"workspace": "ws-1", "plugin": PLUGIN_ID, "tool": "kv"}
        body |= {"provider": "storage_tool", "parameters": {"op": "wait", "key": key}}
        status, answer = service.call("POST", "/v1/admin/tools/invoke", body)
        first, last = (json.loads(line) for line in answer.splitlines())
        assert (status, first["message"]) == (200, {"text": f"waiting for {key}"})
        assert last == {
            "error": {
                "code": "plugin_error",
                "message": f"tool storage_tool/kv of {PLUGIN_ID} failed: "
                f"RuntimeError: {key} says fail",
                "error_type": "RuntimeError",
            }
        }

    def test_cli_prints_each_message_as_it_arrives(self, service: HostService) -> None:
        """A real process: its first line is readable while the tool still waits."""
        key = f"release-{uuid.uuid4().hex}"
        command = [sys.executable, "-m", "pluginkv", "tool", "invoke", "--url", service.url]
        command += ["--data-dir", str(service.data_dir), "--workspace", "ws-1"]
        command += ["--plugin", PLUGIN_ID, "--provider", "storage_tool", "--tool", "kv"]
        command += ["--params", json.dumps({"op": "wait", "key": key})]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as cli:
            assert cli.stdout is not None
            first = json.loads(cli.stdout.readline())
            assert first["message"] == {"text": f"waiting for {key}"}
            _release(service, "ws-1", key)
            rest, errors = cli.communicate(timeout=60)
        assert cli.returncode == 0, errors
        assert json.loads(rest)["message"]["json_object"]["released"] == "go"

    def test_cli_prints_what_came_then_fails_on_a_tool_error(self, service: HostService) -> None:
        key = f"release-{uuid.uuid4().hex}"
        _release(service, "ws-1", key, b"fail")
        result = _cli(service, "ws-1", "--params", json.dumps({"op": "wait", "key": key}))
        assert result.exit_code == 3
        assert json.loads(result.stdout)["message"] == {"text": f"waiting for {key}"}
        assert result.stderr == (
            f"error: tool storage_tool/kv of {PLUGIN_ID} failed: RuntimeError: {key} says fail\n"
        )


def _parameter(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "form": "llm", **fields}


class TestWithDefaults:
    @pytest.mark.parametrize(
        ("kind", "declared", "given"),
        [
            pytest.param("boolean", 1, True, id="boolean-from-a-remote-declaration"),
            pytest.param("boolean", 0, False, id="boolean-0"),
            pytest.param("boolean", "Yes", True, id="boolean-word"),
            pytest.param("boolean", "false", False, id="boolean-false-word"),
            pytest.param("number", "2.5", 2.5, id="number-text"),
            pytest.param("number", "7", 7, id="integer-text"),
            pytest.param("number", 3, 3, id="number"),
            pytest.param("string", 42, "42", id="string-from-a-number"),
            pytest.param("select", "a", "a", id="select"),
            pytest.param("file", {"url": "u"}, {"url": "u"}, id="other-kinds-as-declared"),
        ],
    )
    def test_a_default_is_cast_to_its_type_as_dify_casts_it(
        self, kind: str, declared: Any, given: Any
    ) -> None:
        declaration = {"parameters": [_parameter("p", kind, default=declared)]}
        filled = with_defaults(declaration, {}, "tool t")
        assert filled == {"p": given} and type(filled["p"]) is type(given)

    def test_every_missing_required_parameter_is_named(self) -> None:
        declaration = {
            "parameters": [
                _parameter("a", "string", required=True),
                _parameter("b", "string", required=True, default="x"),
                _parameter("c", "number", required=True),
                _parameter("d", "string"),
            ]
        }
        with pytest.raises(InvalidArgument, match="tool t needs the parameters 'a', 'c': "):
            with_defaults(declaration, {"d": None}, "tool t")

    def test_the_callers_parameters_are_left_as_they_were(self) -> None:
        given: dict[str, Any] = {}
        with_defaults({"parameters": [_parameter("p", "string", default="x")]}, given, "t")
        assert given == {}

    def test_a_tool_without_parameters_takes_anything(self) -> None:
        assert with_defaults({}, {"x": 1}, "tool t") == {"x": 1}


class TestDeclaredCredentials:
    """What the provider declares, in both shapes the host meets."""

    SCHEMA: ClassVar[list[dict[str, Any]]] = [
        {"name": "key", "type": "secret-input", "required": True},
        {"name": "token", "type": "secret-input", "required": True},
        {"name": "region", "type": "text-input", "required": True, "default": "eu"},
        {"name": "note", "type": "text-input"},
    ]

    @pytest.mark.parametrize(
        "provider",
        [
            pytest.param({"credentials_schema": SCHEMA}, id="registered"),
            pytest.param({"credentials_for_provider": {c["name"]: c for c in SCHEMA}}, id="yaml"),
        ],
    )
    def test_defaults_are_filled_and_every_missing_required_one_is_named(
        self, provider: dict[str, Any]
    ) -> None:
        given = {"key": "k", "token": "t", "extra": "kept"}
        assert with_declared_credentials(provider, given, "tool t") == {**given, "region": "eu"}
        with pytest.raises(InvalidArgument, match="tool t needs the credentials 'key', 'token': "):
            with_declared_credentials(provider, {"token": None}, "tool t")

    def test_a_provider_that_declares_none_takes_anything(self) -> None:
        assert with_declared_credentials({}, {"x": "1"}, "tool t") == {"x": "1"}


@pytest.mark.usefixtures("ws1_plugin")
class TestCasting:
    def test_given_parameters_reach_the_tool_cast_to_their_types(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """A form's text, as Dify sends it: "false" is false in plugin code, "3" is 3."""
        given = {"op": "params", "missing_ok": "false", "step": "3", "encoding": "latin-1"}
        status, answer = _invoke(service, workspaces[0], parameters=given)
        assert (status, answer["parameters"]) == (
            200,
            {"op": "params", "missing_ok": False, "step": 3, "encoding": "latin-1"},
        )

    def test_a_false_given_as_text_is_honoured_by_the_tool(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """Once a truthy string: get of a missing key would have answered no value."""
        parameters = {"op": "get", "key": "never-set", "missing_ok": "false"}
        status, answer = _invoke(service, workspaces[0], parameters=parameters)
        assert status == 200 and answer["error"].startswith("load data failed")

    @pytest.mark.parametrize(
        ("parameters", "message"),
        [
            pytest.param(
                {"missing_ok": "maybe"},
                "parameter 'missing_ok' (boolean) takes true or false",
                id="boolean",
            ),
            pytest.param({"step": "two"}, "parameter 'step' (number) takes a number", id="number"),
            pytest.param(
                {"encoding": "utf-16"},
                "parameter 'encoding' (select) takes one of 'utf-8', 'latin-1', not \"utf-16\"",
                id="select",
            ),
        ],
    )
    def test_a_value_that_cannot_be_cast_is_400_naming_the_parameter(
        self, service: HostService, workspaces: Ws, parameters: dict[str, Any], message: str
    ) -> None:
        """The tool never runs: nothing is stored."""
        key = f"uncast-{uuid.uuid4().hex}"
        given = {"op": "set", "key": key, "value": "x", **parameters}
        status, error = _invoke(service, workspaces[0], parameters=given)
        assert (status, error["code"]) == (400, "invalid_argument")
        assert error["message"].startswith(f"tool storage_tool/kv of {PLUGIN_ID}: {message}")
        stored = service.store.storage(workspace=workspaces[0], plugin=PLUGIN_ID)
        assert stored.get(key) is None

    def test_cli_reports_a_value_that_cannot_be_cast(self, service: HostService) -> None:
        result = _cli(service, "ws-1", "--params", '{"op": "params", "step": "two"}')
        assert result.exit_code == 3
        assert result.stderr.startswith(
            f"error: tool storage_tool/kv of {PLUGIN_ID}: parameter 'step' (number) "
        )


@pytest.mark.usefixtures("ws1_plugin")
class TestContext:
    IDS: ClassVar[dict[str, str]] = {
        "conversation_id": "conv-1",
        "app_id": "app-1",
        "message_id": "msg-1",
    }

    def test_the_ids_a_call_carries_reach_the_session(
        self, service: HostService, served: Served
    ) -> None:
        """self.session.conversation_id and the others, and self.runtime.user_id."""
        ids = {**self.IDS, "conversation_id": f"conv-{uuid.uuid4().hex}"}
        body = served.call(parameters={"op": "context"}, user="user-7", **ids)
        status, answer = _call(service, body)
        assert (status, answer["context"]) == (200, {"user_id": "user-7", **ids})
        # Storage keyed on the conversation, as real plugins do it.
        assert answer["turns"] == 1
        assert _call(service, body)[1]["turns"] == 2
        stored = service.store.storage(workspace=served.workspace, plugin=served.example.plugin)
        assert stored.get(f"turns/{ids['conversation_id']}") == b"2"

    def test_without_ids_the_session_has_none(self, service: HostService, served: Served) -> None:
        status, answer = _call(service, served.call(parameters={"op": "context"}))
        assert (status, answer) == (
            200,
            {
                "op": "context",
                "key": "",
                "context": {
                    "user_id": "",
                    "conversation_id": None,
                    "app_id": None,
                    "message_id": None,
                },
            },
        )

    def test_cli_passes_the_ids(self, service: HostService, served: Served) -> None:
        options = ["--user", "u-9", "--conversation-id", "c-9", "--app-id", "a-9"]
        options += ["--message-id", "m-9", "--params", '{"op": "context"}']
        result = _cli(service, served.workspace, *options, example=served.example)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)["message"]["json_object"]
        assert answer["context"] == {
            "user_id": "u-9",
            "conversation_id": "c-9",
            "app_id": "a-9",
            "message_id": "m-9",
        }

    def test_an_id_that_is_not_a_string_is_400(self, service: HostService) -> None:
        status, error = _invoke(service, "ws-1", parameters={"op": "context"}, app_id=5)
        assert (status, error["message"]) == (400, "field 'app_id' must be a str")


def _validate(service: HostService, workspace: str, **body: Any) -> tuple[int, Any]:
    request = {"workspace": workspace, "plugin": PLUGIN_ID, "provider": "storage_tool", **body}
    status, answer = service.call("POST", "/v1/admin/tools/validate-credentials", request)
    return status, json.loads(answer)


@pytest.mark.usefixtures("ws1_plugin")
class TestValidateCredentials:
    def test_credentials_the_provider_accepts_are_valid(
        self, service: HostService, workspaces: Ws
    ) -> None:
        status, answer = _validate(service, workspaces[0], credentials={"api_key": "sk-1"})
        assert (status, answer) == (
            200,
            {"plugin": PLUGIN_ID, "provider": "storage_tool", "valid": True},
        )

    def test_credentials_the_provider_refuses_are_400_with_its_reason(
        self, service: HostService, workspaces: Ws
    ) -> None:
        """The provider's _validate_credentials ran in the plugin and raised."""
        status, answer = _validate(service, workspaces[0], credentials={"api_key": "pk-1"})
        assert (status, answer["error"]) == (
            400,
            {
                "code": "invalid_argument",
                "message": f"tool provider storage_tool of {PLUGIN_ID} refused the credentials: "
                "ToolProviderCredentialValidationError: the API key must start with sk-",
            },
        )

    def test_an_unknown_provider_is_404(self, service: HostService) -> None:
        status, answer = _validate(service, "ws-1", provider="nope")
        assert (status, answer["error"]["code"]) == (404, "plugin_not_found")

    def test_cli_prints_valid_or_exits_with_the_reason(self, service: HostService) -> None:
        args = ["tool", "validate-credentials", "--url", service.url]
        args += ["--data-dir", str(service.data_dir), "--workspace", "ws-1"]
        args += ["--plugin", PLUGIN_ID, "--provider", "storage_tool", "--credentials"]
        valid = CliRunner().invoke(main, [*args, '{"api_key": "sk-1"}'])
        assert (valid.exit_code, valid.stdout) == (0, "valid\n")
        refused = CliRunner().invoke(main, [*args, '{"api_key": "pk-1"}'])
        assert refused.exit_code == 3
        assert refused.stderr.endswith(
            "ToolProviderCredentialValidationError: the API key must start with sk-\n"
        )
