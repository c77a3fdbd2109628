"""Creating layers from configuration: open_channel_layer, CHANNEL_LAYERS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test.utils import override_settings

from achannels.exceptions import InvalidChannelLayerError
from achannels.layers import (
    InMemoryChannelLayer,
    channel_layers,
    create_channel_layer,
    get_channel_layer,
    layer_from_config,
    open_channel_layer,
)

if not settings.configured:
    settings.configure(USE_I18N=False)


@pytest.fixture
def fresh_manager() -> Iterator[None]:
    saved = dict(channel_layers.backends)
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
    channel_layers.backends.update(saved)


@pytest.mark.anyio
async def test_open_channel_layer_owns_the_layer_for_the_block() -> None:
    async with open_channel_layer("memory", capacity=2) as layer:
        assert isinstance(layer, InMemoryChannelLayer)
        assert layer.capacity == 2
        await layer.send("a", {"type": "x"})
        assert (await layer.receive("a"))["type"] == "x"
    assert layer.statistics().channels == 0


def test_backends_by_dotted_path_and_class() -> None:
    by_path = create_channel_layer("achannels.layers.InMemoryChannelLayer", expiry=5)
    assert isinstance(by_path, InMemoryChannelLayer)
    assert by_path.expiry == 5
    assert isinstance(create_channel_layer(InMemoryChannelLayer), InMemoryChannelLayer)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ("achannels.layers.NoSuchLayer", "cannot import channel layer"),
        ("nowhere.Layer", "cannot import channel layer"),
        ("collections.OrderedDict", "does not implement the channel layer API"),
    ],
)
def test_bad_backends_are_a_clear_error(backend: str, message: str) -> None:
    with pytest.raises(InvalidChannelLayerError, match=message):
        create_channel_layer(backend)


def test_test_config_replaces_config_when_asked() -> None:
    config = {
        "BACKEND": "achannels.layers.InMemoryChannelLayer",
        "CONFIG": {"capacity": 7},
        "TEST_CONFIG": {"capacity": 3},
    }
    assert layer_from_config(config).capacity == 7  # type: ignore[attr-defined]
    assert layer_from_config(config, test=True).capacity == 3  # type: ignore[attr-defined]
    with pytest.raises(InvalidChannelLayerError, match="no BACKEND"):
        layer_from_config({"CONFIG": {}})


@pytest.mark.usefixtures("fresh_manager")
def test_channel_layers_setting_is_honoured() -> None:
    layers = {
        "default": {"BACKEND": "achannels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 9}},
    }
    with override_settings(CHANNEL_LAYERS=layers):
        layer = get_channel_layer()
        assert isinstance(layer, InMemoryChannelLayer)
        assert layer.capacity == 9
        assert get_channel_layer() is layer, "one layer per alias"
        assert get_channel_layer("other") is None
    with override_settings(CHANNEL_LAYERS={"default": {"CONFIG": {}}}):
        channel_layers.backends.clear()
        with pytest.raises(InvalidChannelLayerError, match="no BACKEND"):
            get_channel_layer()


@pytest.mark.usefixtures("fresh_manager")
def test_make_test_backend_needs_a_test_config_as_in_channels() -> None:
    layers = {
        "default": {"BACKEND": "achannels.layers.InMemoryChannelLayer"},
        "testing": {
            "BACKEND": "achannels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 7},
            "TEST_CONFIG": {"capacity": 3},
        },
    }
    with override_settings(CHANNEL_LAYERS=layers):
        with pytest.raises(
            InvalidChannelLayerError, match=r"^No TEST_CONFIG specified for default$"
        ):
            channel_layers.make_test_backend("default")
        layer = channel_layers.make_test_backend("testing")
        assert isinstance(layer, InMemoryChannelLayer)
        assert layer.capacity == 3
        with pytest.raises(InvalidChannelLayerError):
            channel_layers.make_test_backend("missing")


@pytest.mark.usefixtures("fresh_manager")
def test_changing_channel_layers_resets_the_cache_as_in_channels() -> None:
    memory = "achannels.layers.InMemoryChannelLayer"
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": memory}}):
        first = get_channel_layer()
        with override_settings(DEBUG=True):  # another setting: the cache stays
            assert get_channel_layer() is first
        with override_settings(
            CHANNEL_LAYERS={"default": {"BACKEND": memory, "CONFIG": {"capacity": 4}}}
        ):
            inner = get_channel_layer()
            assert isinstance(inner, InMemoryChannelLayer)
            assert inner.capacity == 4
        after = get_channel_layer()  # leaving the override changed it back: made anew
        assert isinstance(after, InMemoryChannelLayer)
        assert after is not first
        assert after is not inner
        assert after.capacity == 100


@pytest.mark.usefixtures("fresh_manager")
def test_a_layer_set_by_hand_is_forgotten_when_channel_layers_changes() -> None:
    manual = InMemoryChannelLayer()
    channel_layers.set("default", manual)
    assert channel_layers["default"] is manual
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "memory"}}):
        assert channel_layers["default"] is not manual


class OwnedMemoryLayer(InMemoryChannelLayer):
    """A memory layer owned as an async context manager, as the Redis layers are."""

    def __init__(self) -> None:
        super().__init__()
        self.owners = 0
        self.released = False

    async def __aenter__(self) -> OwnedMemoryLayer:
        self.owners += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.owners -= 1
        self.released = True


@pytest.mark.anyio
@pytest.mark.usefixtures("fresh_manager")
async def test_an_owned_layer_dropped_from_the_cache_is_still_released_by_its_owner() -> None:
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": OwnedMemoryLayer}}):
        async with channel_layers.owned():
            layer = get_channel_layer()
            assert isinstance(layer, OwnedMemoryLayer)
            assert layer.owners == 1
            with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "memory"}}):
                assert "default" not in channel_layers.backends
                assert get_channel_layer() is not layer
            assert layer.owners == 1, "dropping the reference does not release it"
        assert (layer.owners, layer.released) == (0, True)
