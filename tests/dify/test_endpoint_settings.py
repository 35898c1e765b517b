"""Endpoint settings checked against the group's declaration, as Dify's daemon checks them."""

from __future__ import annotations

from typing import Any

import pytest

from pluginkv import InvalidArgument
from pluginkv.host.endpoint_settings import checked_settings

GROUP = {
    "settings": [
        {"name": "key", "type": "secret-input", "required": True},
        # As a remote plugin registers it: the SDK's model made true 1.
        {"name": "loud", "type": "boolean", "default": 1},
        {"name": "model", "type": "model-selector"},
        {"name": "app", "type": "app-selector"},
    ]
}


def test_defaults_fill_in_and_undeclared_settings_pass() -> None:
    assert checked_settings([GROUP], {"key": "k", "extra": [1]}, "a/b") == {
        "key": "k",
        "loud": True,
        "extra": [1],
    }


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"key": "k", "loud": "yes"}, "setting 'loud' must be true or false"),
        ({"key": "k", "model": {"provider": "p"}}, "setting 'model' needs 'model', 'model_type'"),
        ({"key": "k", "app": "app-1"}, "setting 'app' must be an object"),
        ({"key": ["k"]}, "setting 'key' must be a string"),
    ],
)
def test_a_setting_of_the_wrong_kind_is_named(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        checked_settings([GROUP], settings, "a/b")
    assert str(raised.value) == f"the endpoint settings of a/b are not valid: {problem}"
