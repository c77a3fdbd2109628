"""Create channel layers from configuration, and own them for a block."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from achannels.exceptions import InvalidChannelLayerError
from achannels.layers._base import ChannelLayer

__all__ = ["create_channel_layer", "layer_from_config", "open_channel_layer", "own_layer"]

_SHORT_NAMES = {
    "memory": "achannels.layers.InMemoryChannelLayer",
    "redis": "achannels.layers.redis.RedisChannelLayer",
    "redis_pubsub": "achannels.layers.redis.RedisPubSubChannelLayer",
    # A Channels project's CHANNEL_LAYERS works unchanged: channels_redis's layers
    # are asyncio-only and built on Channels' classes, so ours stand in for them.
    "channels.layers.InMemoryChannelLayer": "achannels.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer": "achannels.layers.redis.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": (
        "achannels.layers.redis.RedisPubSubChannelLayer"
    ),
}


def create_channel_layer(backend: str | type[Any] = "memory", **config: Any) -> ChannelLayer:
    """Return a new layer: ``backend`` is a short name, a dotted class path, or a class.

    Short names: ``"memory"``, ``"redis"``, ``"redis_pubsub"``. channels_redis's class
    paths (``"channels_redis.core.RedisChannelLayer"``, ``...pubsub.RedisPubSub...``)
    and Channels' ``"channels.layers.InMemoryChannelLayer"`` name achannels' own layers,
    so a Channels project's ``CHANNEL_LAYERS`` works as it is.

    Raises:
        InvalidChannelLayerError: the backend cannot be imported or is not a layer.
    """
    factory: Any = backend
    if isinstance(backend, str):
        path = _SHORT_NAMES.get(backend, backend)
        module_name, _, class_name = path.rpartition(".")
        try:
            factory = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InvalidChannelLayerError(f"cannot import channel layer {path!r}: {exc}") from exc
    layer = factory(**config)
    if not isinstance(layer, ChannelLayer):
        raise InvalidChannelLayerError(f"{backend!r} does not implement the channel layer API")
    return layer


def layer_from_config(config: Mapping[str, Any], *, test: bool = False) -> ChannelLayer:
    """Return a layer from a ``CHANNEL_LAYERS`` entry (``BACKEND``, ``CONFIG``, ``TEST_CONFIG``).

    With ``test=True`` the ``TEST_CONFIG`` options are used when present, as Channels does.
    """
    if "BACKEND" not in config:
        raise InvalidChannelLayerError(f"channel layer configuration has no BACKEND: {config!r}")
    options = config.get("TEST_CONFIG") if test and "TEST_CONFIG" in config else None
    if options is None:
        options = config.get("CONFIG") or {}
    return create_channel_layer(config["BACKEND"], **options)


@asynccontextmanager
async def open_channel_layer(
    backend: str | type[Any] = "memory", **config: Any
) -> AsyncIterator[ChannelLayer]:
    """Create a layer for the block and close it when the block ends (shielded).

    ``async with open_channel_layer("memory", capacity=500) as layer:`` — a layer that
    needs background work (the Redis layers' pools and receive loops) keeps it for
    exactly this block, owned by the calling task.
    """
    layer = create_channel_layer(backend, **config)
    try:
        async with own_layer(layer):
            yield layer
    finally:
        with anyio.CancelScope(shield=True):
            await layer.close()


@asynccontextmanager
async def own_layer(layer: object) -> AsyncIterator[None]:
    """Own ``layer``'s background work for the block, if it keeps any.

    Layers that keep connections or receive loops (the Redis layers) are async
    context managers; entering one makes the calling task their owner. Layers that
    keep nothing (the memory layer, ``None``) are left alone. Entering a layer that
    is already owned from the same thread nests.
    """
    if isinstance(layer, AbstractAsyncContextManager):
        async with layer:
            yield
    else:
        yield
