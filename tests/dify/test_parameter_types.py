"""Tool parameters cast to their declared types, given or defaulted, as Dify's API casts them."""

from __future__ import annotations

from typing import Any

import pytest

from pluginkv import InvalidArgument
from pluginkv.host.parameter_types import cast_parameter
from pluginkv.host.tools import with_defaults

SELECT = {"name": "p", "type": "select", "options": [{"value": "a"}, {"value": "b"}]}


def _declared(kind: str) -> dict[str, Any]:
    return {"name": "p", "type": kind, "form": "llm"}


@pytest.mark.parametrize(
    ("kind", "given", "cast"),
    [
        pytest.param("boolean", "false", False, id="boolean-false-text"),
        pytest.param("boolean", "True", True, id="boolean-true-text"),
        pytest.param("boolean", " no ", False, id="boolean-no"),
        pytest.param("boolean", "y", True, id="boolean-y"),
        pytest.param("boolean", 0, False, id="boolean-zero"),
        pytest.param("boolean", 1.0, True, id="boolean-one"),
        pytest.param("boolean", False, False, id="boolean"),
        pytest.param("number", "3", 3, id="integer-text"),
        pytest.param("number", "-2.5", -2.5, id="float-text"),
        pytest.param("number", 7.5, 7.5, id="number"),
        pytest.param("string", 42, "42", id="string-from-number"),
        pytest.param("string", True, "True", id="string-from-boolean"),
        pytest.param("secret-input", 12, "12", id="secret-from-number"),
        pytest.param("file", [{"url": "u"}], {"url": "u"}, id="file-from-a-list-of-one"),
        pytest.param("files", {"url": "u"}, [{"url": "u"}], id="files-from-one"),
        pytest.param("array", "[1, 2]", [1, 2], id="array-from-json"),
        pytest.param("array", "x", ["x"], id="array-from-one"),
        pytest.param("object", '{"a": 1}', {"a": 1}, id="object-from-json"),
        pytest.param("model-selector", {"m": 1}, {"m": 1}, id="selector"),
        pytest.param("a-future-type", {"x": [1]}, {"x": [1]}, id="unknown-type-as-given"),
    ],
)
def test_a_value_is_cast_as_dify_casts_it(kind: str, given: Any, cast: Any) -> None:
    result = cast_parameter(_declared(kind), given, "tool t")
    assert result == cast and type(result) is type(cast)


@pytest.mark.parametrize(
    ("declared", "given", "message"),
    [
        pytest.param(_declared("boolean"), "maybe", "takes true or false", id="boolean-word"),
        pytest.param(_declared("boolean"), 2, "takes true or false", id="boolean-two"),
        pytest.param(_declared("boolean"), [True], "takes true or false", id="boolean-list"),
        pytest.param(_declared("number"), "3e", "takes a number", id="number-text"),
        pytest.param(_declared("number"), "1e3", "takes a number", id="number-exponent"),
        pytest.param(_declared("number"), True, "takes a number", id="number-boolean"),
        pytest.param(_declared("string"), {"a": 1}, "takes text", id="string-object"),
        pytest.param(SELECT, "c", "takes one of 'a', 'b'", id="select-option"),
        pytest.param(_declared("file"), [{}, {}], "takes one file", id="two-files"),
        pytest.param(_declared("object"), "[1]", "takes an object", id="object-list"),
        pytest.param(_declared("app-selector"), "app", "takes an object", id="selector"),
    ],
)
def test_a_value_that_cannot_be_cast_names_the_parameter(
    declared: dict[str, Any], given: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        cast_parameter(declared, given, "tool s/t of a/b")
    assert str(raised.value).startswith(f"tool s/t of a/b: parameter 'p' ({declared['type']}) ")
    assert message in str(raised.value)


def test_null_stays_null() -> None:
    assert cast_parameter(_declared("boolean"), None, "tool t") is None


class TestWithDefaults:
    def test_given_and_defaulted_parameters_are_both_cast(self) -> None:
        declaration = {
            "parameters": [
                {"name": "flag", "type": "boolean", "default": "true"},
                {"name": "off", "type": "boolean"},
                {"name": "n", "type": "number", "default": "2"},
                {"name": "s", "type": "string"},
            ]
        }
        given = {"off": "false", "s": 5, "extra": "as given"}
        assert with_defaults(declaration, given, "tool t") == {
            "flag": True,
            "off": False,
            "n": 2,
            "s": "5",
            "extra": "as given",
        }

    def test_an_empty_number_takes_its_default_or_counts_as_missing(self) -> None:
        declaration = {
            "parameters": [
                {"name": "n", "type": "number", "default": 4},
                {"name": "m", "type": "number", "required": True},
            ]
        }
        assert with_defaults(declaration, {"n": "", "m": "1"}, "tool t") == {"n": 4, "m": 1}
        with pytest.raises(InvalidArgument, match="tool t needs the parameter 'm'"):
            with_defaults(declaration, {"m": ""}, "tool t")

    def test_a_default_that_cannot_be_cast_is_refused_too(self) -> None:
        declaration = {"parameters": [{"name": "n", "type": "number", "default": "many"}]}
        with pytest.raises(InvalidArgument, match="parameter 'n' \\(number\\) takes a number"):
            with_defaults(declaration, {}, "tool t")
