"""Name, message and capacity rules of channel layers, checked without an event loop."""

from __future__ import annotations

import re
from typing import Any

import pytest

import achannels.layers
from achannels.layers import BaseChannelLayer
from achannels.layers import _names as names


def test_layers_all_is_sorted_and_complete() -> None:
    # "@py_builtins"...: pytest rewrites the asserts of packages that ship a plugin.
    public = {n for n in dir(achannels.layers) if not n.startswith(("_", "@"))}
    assert sorted(achannels.layers.__all__) == achannels.layers.__all__
    assert set(achannels.layers.__all__) == public - {"annotations", "memory", "redis"}


def test_the_constants_are_channels_own() -> None:
    assert names.MAX_NAME_LENGTH == 100
    assert names.CHANNEL_NAME_REGEX.pattern == r"^[a-zA-Z\d\-_.]+(\![\d\w\-_.]*)?$"
    assert names.GROUP_NAME_REGEX.pattern == r"^[a-zA-Z\d\-_.]+$"


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "chat_room-1.x",
        "http.response!",
        "http.response!abc_DEF-12.3",
        "specific..inmemory!AbC-_9",
        "x" * 99,
    ],
)
def test_valid_channel_names(name: str) -> None:
    assert names.require_valid_channel_name(name) == name
    assert names.is_valid_channel_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 100, "has space", "a/b", "café", "a!b!c", "!abc", "trailing\n", 12, None, b"ab"],
)
def test_invalid_channel_names_raise_type_error(name: Any) -> None:
    assert not names.is_valid_channel_name(name)
    with pytest.raises(TypeError, match="Channel name must be a valid unicode string"):
        names.require_valid_channel_name(name)


def test_receive_rule_for_process_local_names() -> None:
    assert names.require_valid_channel_name("worker!", receive=True) == "worker!"
    assert names.require_valid_channel_name("worker!abc") == "worker!abc"
    assert not names.is_valid_channel_name("worker!abc", receive=True)
    with pytest.raises(TypeError, match="must end at the !"):
        names.require_valid_channel_name("worker!abc", receive=True)


@pytest.mark.parametrize("name", ["chat", "chat_room-1.x", "g" * 99])
def test_valid_group_names(name: str) -> None:
    assert names.require_valid_group_name(name) == name


@pytest.mark.parametrize("name", ["", "g" * 100, "chat!", "a b", "trailing\n", 3, None])
def test_invalid_group_names_raise_type_error(name: Any) -> None:
    assert not names.is_valid_group_name(name)
    with pytest.raises(TypeError, match="Group name must be a valid unicode string"):
        names.require_valid_group_name(name)


CHANNELS_INVALID_NAME_ERROR = (
    "{} name must be a valid unicode string with length < 100 "
    "containing only ASCII alphanumerics, hyphens, underscores, or periods."
)


def test_invalid_name_error_is_channels_wording() -> None:
    assert BaseChannelLayer.invalid_name_error == CHANNELS_INVALID_NAME_ERROR
    assert names.INVALID_NAME_ERROR == CHANNELS_INVALID_NAME_ERROR


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("Group", BaseChannelLayer().require_valid_group_name),
        ("Channel", BaseChannelLayer().require_valid_channel_name),
    ],
)
@pytest.mark.parametrize("name", ["a" * 100, "a" * 101, "bad name", 12])
def test_name_errors_say_what_channels_says(kind: str, check: Any, name: object) -> None:
    """As Channels' ``test_*_name_length_error_message``; the name itself is in a note."""
    layer = BaseChannelLayer()
    expected = layer.invalid_name_error.format(kind)
    with pytest.raises(TypeError, match=re.escape(expected)) as caught:
        check(name)
    assert str(caught.value) == expected
    assert caught.value.__notes__ == [f"{kind.lower()} name: {name!r}"]


def test_messages_must_be_dicts_with_a_str_type() -> None:
    message = {"type": "chat.message", "text": "hi"}
    assert names.require_valid_message(message) is message
    for bad in (["type"], "chat", None, {}, {"type": 1}, {"text": "no type"}):
        with pytest.raises(TypeError, match="layer message"):
            names.require_valid_message(bad)
    with pytest.raises(ValueError, match="__asgi_channel__"):
        names.require_valid_message({"type": "x", "__asgi_channel__": "c"})


def test_non_local_name() -> None:
    assert names.non_local_name("worker!abc") == "worker!"
    assert names.non_local_name("worker!") == "worker!"
    assert names.non_local_name("worker") == "worker"


def test_base_layer_capacities_glob_and_regex_first_match_wins() -> None:
    layer = BaseChannelLayer(
        capacity=7,
        channel_capacity={
            "http.response!*": 2,
            re.compile(r"big\."): 50,
            "big.special": 1,  # after the regex that also matches: never used
        },
    )
    assert layer.get_capacity("http.response!abc") == 2
    assert layer.get_capacity("big.special") == 50
    assert layer.get_capacity("big") == 7
    assert layer.get_capacity("http.request") == 7
    assert layer.expiry == 60


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0},
        {"capacity": 1.5},
        {"capacity": True},
        {"expiry": 0},
        {"channel_capacity": {"a.*": 0}},
    ],
)
def test_base_layer_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        BaseChannelLayer(**kwargs)


def test_base_layer_name_methods_match_channels() -> None:
    layer = BaseChannelLayer()
    assert layer.MAX_NAME_LENGTH == 100
    assert layer.match_type_and_length("x" * 99)
    assert not layer.match_type_and_length("x" * 100)
    assert not layer.match_type_and_length(5)
    assert layer.require_valid_channel_name("a.b!c")
    assert layer.require_valid_group_name("g")
    assert layer.valid_channel_names(["a", "b!"], receive=True)
    assert layer.non_local_name("a!b") == "a!"
    with pytest.raises(TypeError):
        layer.require_valid_channel_name("a!b", receive=True)
    with pytest.raises(TypeError, match="non-empty list"):
        layer.valid_channel_names([])
    with pytest.raises(TypeError, match="non-empty list"):
        layer.valid_channel_names("abc")


def test_deprecated_validators_warn_like_channels() -> None:
    layer = BaseChannelLayer()
    with pytest.warns(DeprecationWarning, match="require_valid_channel_name"):
        assert layer.valid_channel_name("abc")
    with pytest.warns(DeprecationWarning, match="require_valid_group_name"):
        assert layer.valid_group_name("abc")
    with pytest.warns(DeprecationWarning, match="deprecated"), pytest.raises(TypeError):
        layer.valid_group_name("a!b")
