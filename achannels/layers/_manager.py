"""Django's ``CHANNEL_LAYERS`` setting, read lazily: the Channels-compatible manager.

This is the one place where a layer is looked up by alias from settings; the
native core never reads it (a ``Router`` gets its layer passed in).

As Channels' manager, it forgets the layers it made whenever Django's
``setting_changed`` signal reports a new ``CHANNEL_LAYERS`` (``override_settings``
in tests). It connects to the signal the first time it reads the setting or a layer
is installed, so that importing achannels never imports Django.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from achannels.exceptions import InvalidChannelLayerError
from achannels.layers._base import ChannelLayer
from achannels.layers._open import layer_from_config, own_layer

__all__ = ["DEFAULT_CHANNEL_LAYER", "ChannelLayerManager", "channel_layers", "get_channel_layer"]

DEFAULT_CHANNEL_LAYER = "default"


class ChannelLayerManager:
    """Create each configured layer on first use and keep it, per alias."""

    def __init__(self) -> None:
        self.backends: dict[str, ChannelLayer] = {}
        self._watching = False

    @property
    def configs(self) -> Mapping[str, Any]:
        """The ``CHANNEL_LAYERS`` setting (empty without Django, settings, or the setting)."""
        try:
            from django.conf import settings
        except ImportError:
            return {}
        self._watch_settings()
        if not settings.configured:
            return {}
        configs: Mapping[str, Any] = getattr(settings, "CHANNEL_LAYERS", None) or {}
        return configs

    def make_backend(self, name: str) -> ChannelLayer:
        """Create the layer configured as ``name``."""
        return self._make(name, test=False)

    def make_test_backend(self, name: str) -> ChannelLayer:
        """Create the layer configured as ``name`` with its ``TEST_CONFIG``.

        Raises:
            InvalidChannelLayerError: ``name`` has no ``TEST_CONFIG``, as in Channels.
        """
        return self._make(name, test=True)

    def _make(self, name: str, *, test: bool) -> ChannelLayer:
        try:
            config = self.configs[name]
        except KeyError:
            raise InvalidChannelLayerError(f"no channel layer {name!r} in CHANNEL_LAYERS") from None
        if test and "TEST_CONFIG" not in config:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for {name}")
        return layer_from_config(config, test=test)

    def _watch_settings(self) -> None:
        """Connect to Django's ``setting_changed`` once, if Django is installed."""
        if self._watching:
            return
        try:
            from django.core.signals import setting_changed
        except ImportError:
            return
        setting_changed.connect(self._reset_backends)  # weakly: a manager may be dropped
        self._watching = True

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        """Forget the layers made so far when ``CHANNEL_LAYERS`` changes, as Channels does.

        Only the references go: a layer that is owned (a Redis layer inside
        :meth:`owned` or ``async with``) is still closed by its owner.
        """
        if setting == "CHANNEL_LAYERS":
            self.backends.clear()

    def __getitem__(self, name: str) -> ChannelLayer:
        if name not in self.backends:
            self.backends[name] = self.make_backend(name)
        return self.backends[name]

    def __contains__(self, name: object) -> bool:
        return name in self.configs

    @asynccontextmanager
    async def owned(self) -> AsyncIterator[None]:
        """Own every configured layer's background work for the block.

        ``ProtocolTypeRouter`` does this from lifespan startup to shutdown, so the
        Redis layers keep pooled connections and receive loops while the server
        runs. Each alias's layer is created now if it was not yet.
        """
        async with AsyncExitStack() as stack:
            for name in self.configs:
                await stack.enter_async_context(own_layer(self[name]))
            yield

    def set(self, name: str, layer: ChannelLayer) -> ChannelLayer | None:
        """Install ``layer`` as ``name`` (for tests); return the one it replaces.

        As in Channels, a later change of ``CHANNEL_LAYERS`` forgets it too.
        """
        self._watch_settings()
        old = self.backends.get(name)
        self.backends[name] = layer
        return old


#: The process-wide manager, as in Channels (``from channels.layers import channel_layers``).
channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> ChannelLayer | None:
    """Return the layer configured as ``alias`` in ``CHANNEL_LAYERS``, or ``None``."""
    try:
        return channel_layers[alias]
    except InvalidChannelLayerError:
        if alias in channel_layers:
            raise
        return None
