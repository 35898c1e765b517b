"""Tool calls as Dify's API makes them: credentials, on both transports, with the real SDK."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from pluginkv.cli import main

from .conftest import PLUGIN_ID, HostService

Ws = tuple[str, str]

pytestmark = pytest.mark.usefixtures("ws1_plugin")


def _invoke(service: HostService, workspace: str, **body: Any) -> tuple[int, Any]:
    """The example's kv tool for ``workspace``: its JSON answer, or the error body."""
    request = {"workspace": workspace, "plugin": PLUGIN_ID, "provider": "storage_tool"}
    request |= {"tool": "kv", **body}
    status, answer = service.call("POST", "/v1/admin/tools/invoke", request)
    if status != 200:
        return status, json.loads(answer)["error"]
    (line,) = answer.splitlines()
    return status, json.loads(line)["message"]["json_object"]


def _cli(service: HostService, workspace: str, *options: str) -> Any:
    args = ["tool", "invoke", "--url", service.url, "--data-dir", str(service.data_dir)]
    args += ["--workspace", workspace, "--plugin", PLUGIN_ID, "--provider", "storage_tool"]
    return CliRunner().invoke(main, [*args, "--tool", "kv", *options])


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

    def test_without_credentials_the_tool_gets_none_as_an_api_key(
        self, service: HostService, workspaces: Ws
    ) -> None:
        status, answer = _invoke(service, workspaces[0], parameters={"op": "credentials"})
        assert (status, answer["credentials"], answer["credential_type"]) == (200, {}, "api-key")

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
