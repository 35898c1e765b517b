"""The shared SQL templates: one text, each dialect's parameter markers."""

from __future__ import annotations

from dataclasses import fields

import pytest

from pluginkv.backends.sql_templates import render, render_statements


def test_a_template_takes_each_dialects_markers_for_parameters_and_values() -> None:
    template = "INSERT INTO t (a, b) VALUES (?, ?blob)"

    assert render(template, "sqlite") == "INSERT INTO t (a, b) VALUES (?, ?)"
    assert render(template, "postgres") == "INSERT INTO t (a, b) VALUES (%s, %b)"


@pytest.mark.parametrize("template", ["SELECT 1 WHERE a LIKE ?%", "SELECT 1 WHERE a = '?'"])
def test_a_template_with_text_a_driver_would_take_for_a_marker_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="shared SQL template"):
        render(template, "postgres")


def test_every_shared_statement_has_as_many_markers_in_both_dialects() -> None:
    sqlite, postgres = render_statements("sqlite"), render_statements("postgres")

    for field in fields(sqlite):
        sqlite_sql, postgres_sql = getattr(sqlite, field.name), getattr(postgres, field.name)
        assert "%" not in sqlite_sql and "?" not in postgres_sql, field.name
        assert sqlite_sql.count("?") == postgres_sql.count("%s") + postgres_sql.count("%b")
