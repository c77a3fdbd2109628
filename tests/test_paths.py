"""Route patterns, sans-IO."""

from __future__ import annotations

import uuid

import pytest

from achannels._paths import compile_path


def test_static_path_matches_only_itself() -> None:
    pattern = compile_path("/ws/echo/")
    assert pattern.match("/ws/echo/") == {}
    assert pattern.match("/ws/echo") is None
    assert pattern.match("/ws/echo/x") is None


def test_str_and_int_parameters_are_converted() -> None:
    pattern = compile_path("/rooms/{room}/items/{item:int}")
    assert pattern.match("/rooms/lobby/items/42") == {"room": "lobby", "item": 42}
    assert pattern.match("/rooms/lobby/items/x") is None
    assert pattern.match("/rooms/a/b/items/1") is None


def test_slug_uuid_and_path_converters() -> None:
    value = uuid.uuid4()
    assert compile_path("/u/{id:uuid}").match(f"/u/{value}") == {"id": value}
    assert compile_path("/s/{name:slug}").match("/s/a-b_c") == {"name": "a-b_c"}
    assert compile_path("/s/{name:slug}").match("/s/a.b") is None
    assert compile_path("/files/{rest:path}").match("/files/a/b.txt") == {"rest": "a/b.txt"}


def test_regex_characters_in_the_pattern_are_literal() -> None:
    assert compile_path("/a.b/{x}").match("/aXb/1") is None
    assert compile_path("/a.b/{x}").match("/a.b/1") == {"x": "1"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("ws/", "must start with '/'"),
        ("/{x:float}", "unknown converter 'float'"),
        ("/{x}/{x}", "twice"),
        ("/{1x}", "not a valid parameter name"),
        ("/{x", "unbalanced brace"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_path(pattern)
