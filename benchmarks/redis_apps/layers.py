"""Open the layer under test, achannels' or channels_redis's, the way a server runs it.

achannels' ``RedisChannelLayer`` is always owned (``async with layer``: pooled
connections and one receive loop per process key, as ``Router(layer=...)``'s lifespan
runs it). channels_redis's layer needs no owner; its pools are closed at the end.
Both get the same settings. channels_redis runs on asyncio only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LAYERS = ("achannels", "channels_redis")
#: Where the benchmark's Redis is (the apps read it from the environment too).
DEFAULT_URL = "redis://127.0.0.1:6379"


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL", DEFAULT_URL)


@asynccontextmanager
async def open_layer(kind: str, prefix: str, **config: Any) -> AsyncIterator[Any]:
    """Yield a ready layer of ``kind`` on the benchmark's Redis, keys under ``prefix``."""
    if kind == "achannels":
        from achannels.layers.redis import RedisChannelLayer

        layer = RedisChannelLayer(hosts=[redis_url()], prefix=prefix, **config)
        async with layer:
            yield layer
    elif kind == "channels_redis":
        from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer

        theirs = ChannelsRedisLayer(hosts=[redis_url()], prefix=prefix, **config)
        try:
            yield theirs
        finally:
            await theirs.close_pools()
    else:
        raise ValueError(f"unknown layer {kind!r}; choose from {', '.join(LAYERS)}")


def reader(layer: Any, channel: str) -> Any:
    """Return ``async () -> message`` reading ``channel`` as each framework's consumers do.

    achannels' connection runtime drains what is buffered with ``receive_nowait`` and
    awaits ``receive`` only when nothing is; Channels consumers await ``receive``.
    """
    import anyio

    receive = layer.receive
    receive_nowait = getattr(layer, "receive_nowait", None)
    if receive_nowait is None:

        async def read_theirs() -> Any:
            return await receive(channel)

        return read_theirs

    async def read_ours() -> Any:
        try:
            return receive_nowait(channel)
        except anyio.WouldBlock:
            return await receive(channel)

    return read_ours
