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

import anyio
import pytest

from achannels._asgi import ASGIApp
from achannels.layers import InMemoryChannelLayer

from .helpers import RawConnection, chat_consumer_app, chat_router, ws_scope

pytestmark = pytest.mark.anyio


async def chat_once(app: ASGIApp) -> None:
    """Connect, send a message the room (and so the connection's reader) relays, leave."""
    connection = RawConnection(ws_scope("/chat/room/"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(connection.run, app)
        connection.send_input({"type": "websocket.connect"})
        assert (await connection.output())["type"] == "websocket.accept"
        connection.send_input({"type": "websocket.receive", "text": '{"m": "hi"}'})
        assert json.loads((await connection.output())["text"]) == {"message": "hi"}
        connection.send_input({"type": "websocket.disconnect", "code": 1000})
        await connection.finished.wait()
    connection.close()


@pytest.mark.parametrize("make_app", [chat_router, chat_consumer_app], ids=["native", "class"])
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
