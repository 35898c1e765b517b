"""Keys on the plugin channel cleaned as Go's ``path.Clean`` cleans paths (Dify's daemon)."""

from __future__ import annotations

import pytest

from pluginkv import InvalidKey
from pluginkv.dify.key_paths import clean_key, go_path_clean


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        # The examples of Go's path.Clean documentation.
        ("a/c", "a/c"),
        ("a//c", "a/c"),
        ("a/c/.", "a/c"),
        ("a/c/b/..", "a/c"),
        ("/../a/c", "/a/c"),
        ("/../a/b/../././/c", "/a/c"),
        ("", "."),
        # Its rules one by one: repeated slashes, ".", inner "..", rooted "..", trailing slash.
        ("//a", "/a"),
        ("///a//b///", "/a/b"),
        ("./a/./b/.", "a/b"),
        ("a/b/../../c", "c"),
        ("a/../..", ".."),
        ("../../a", "../../a"),
        ("/..", "/"),
        ("/", "/"),
        ("a/", "a"),
        ("a...b/c", "a...b/c"),
    ],
)
def test_paths_are_cleaned_by_gos_rules(path: str, cleaned: str) -> None:
    assert go_path_clean(path) == cleaned


@pytest.mark.parametrize(
    ("key", "stored"),
    [("a//b", "a/b"), ("/a/b", "a/b"), ("./a/b/", "a/b"), ("a/x/../b", "a/b"), ("k", "k")],
)
def test_spellings_of_one_file_are_one_key(key: str, stored: str) -> None:
    assert clean_key(key) == stored


@pytest.mark.parametrize("key", ["", ".", "/", "a/..", "//"])
def test_a_key_that_names_no_file_is_refused(key: str) -> None:
    with pytest.raises(InvalidKey, match="names no file once cleaned"):
        clean_key(key)
