"""Who owns a Redis layer's pools and receive loops: lifespans, workers, open_channel_layer."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from achannels import Router
from achannels._asgi import ASGIApp, Receive, Scope, Send
from achannels.layers import channel_layers
from achannels.layers.redis import RedisChannelLayer
from achannels.routing import ProtocolTypeRouter
from achannels.worker import Worker

pytestmark = pytest.mark.anyio

URL = "redis://127.0.0.1:6379/4"


def redis_layer() -> RedisChannelLayer:
    layer = RedisChannelLayer(hosts=[URL], prefix=f"own{secrets.token_hex(4)}")
    layer.brpop_timeout = 0.2  # closing waits at most this long for a pop in flight
    return layer


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[list[dict[str, Any]]]:
    """Run ``app``'s lifespan: started on entry, shut down on exit; yield what it sent."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    sent: list[dict[str, Any]] = []
    started = anyio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        started.set()

    async def run() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, app_inbox.receive, send)

    async with anyio.create_task_group() as tg, to_app, app_inbox:
        tg.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        with anyio.fail_after(5):
            await started.wait()
        yield sent
        await to_app.send({"type": "lifespan.shutdown"})


async def test_a_router_owns_its_layer_from_startup_to_shutdown() -> None:
    layer = redis_layer()
    router = Router(layer=layer)
    assert not layer.statistics().owned
    async with lifespan(router) as sent:
        assert sent == [{"type": "lifespan.startup.complete"}]
        assert layer.statistics().owned
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "x"})
        assert await layer.receive(channel) == {"type": "x"}
        assert layer.statistics().receive_loops == 1
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    stats = layer.statistics()
    assert (stats.owned, stats.receive_loops) == (False, 0)
    await layer.flush()


async def test_protocol_type_router_owns_the_configured_layers() -> None:
    layer = redis_layer()
    old = channel_layers.set("default", layer)
    try:
        router = ProtocolTypeRouter({"websocket": Router()})
        async with lifespan(router) as sent:
            assert sent == [{"type": "lifespan.startup.complete"}]
            assert layer.statistics().owned
        assert sent[-1] == {"type": "lifespan.shutdown.complete"}
        assert not layer.statistics().owned
    finally:
        if old is not None:
            channel_layers.set("default", old)
        else:
            del channel_layers.backends["default"]


async def test_a_worker_owns_its_layer_while_it_runs() -> None:
    layer = redis_layer()
    seen: list[dict[str, Any]] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(await receive()))
        done.set()

    worker = Worker(application=app, channels=["jobs"], channel_layer=layer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await layer.send("jobs", {"type": "job.run"})
        with anyio.fail_after(5):
            await done.wait()
        assert layer.statistics().owned
        tg.cancel_scope.cancel()
    assert seen == [{"type": "job.run"}]
    assert not layer.statistics().owned
    await layer.flush()
