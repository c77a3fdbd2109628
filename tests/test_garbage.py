"""An ended connection leaves nothing for the cyclic garbage collector.

Objects in a reference cycle outlive their connection until a collection finds them;
with the thresholds ``tune_gc()`` sets that is many connections later, so a server
that churns connections would grow by the garbage of thousands of them. Each of
these runs connections with the collector off and counts what a collection finds.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from achannels import Router, WebSocket
from achannels._asgi import ASGIApp
from achannels.generic.websocket import AsyncJsonWebsocketConsumer
from achannels.layers import InMemoryChannelLayer

from .helpers import RawConnection, ws_scope

pytestmark = pytest.mark.anyio


def native_app(layer: InMemoryChannelLayer) -> ASGIApp:
    router = Router(layer=layer)

    @router.websocket("/ws/")
    async def chat(ws: WebSocket) -> None:
        await ws.group_add("room")

        @ws.on("chat.message")  # closes over ws: a cycle until the connection ends
        async def relay(event: dict[str, Any]) -> None:
            await ws.send_json({"message": event["message"]})

        await ws.accept()
        async for data in ws.iter_json():
            await ws.group_send("room", {"type": "chat.message", "message": data["m"]})

    return router


def class_app(layer: InMemoryChannelLayer) -> ASGIApp:
    class Chat(AsyncJsonWebsocketConsumer):
        channel_layer = layer

        async def connect(self) -> None:
            assert self.channel_name is not None
            await layer.group_add("room", self.channel_name)
            await self.accept()

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await layer.group_send("room", {"type": "chat.message", "message": content["m"]})

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send_json({"message": event["message"]})

    return Chat.as_asgi()


async def chat_once(app: ASGIApp) -> None:
    """Connect, send a message the room (and so the connection's reader) relays, leave."""
    connection = RawConnection(ws_scope("/ws/"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(connection.run, app)
        connection.send_input({"type": "websocket.connect"})
        assert (await connection.output())["type"] == "websocket.accept"
        connection.send_input({"type": "websocket.receive", "text": '{"m": "hi"}'})
        assert json.loads((await connection.output())["text"]) == {"message": "hi"}
        connection.send_input({"type": "websocket.disconnect", "code": 1000})
        await connection.finished.wait()
    connection.close()


@pytest.mark.parametrize("make_app", [native_app, class_app], ids=["native", "class"])
async def test_an_ended_connection_leaves_no_cyclic_garbage(
    make_app: Callable[[InMemoryChannelLayer], ASGIApp],
) -> None:
    layer = InMemoryChannelLayer()
    app = make_app(layer)
    await chat_once(app)  # first-use caches (routes, settings) are not garbage
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            await chat_once(app)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
    assert layer.statistics().group_members == 0
