"""The native Router mounted inside the Channels-compatible routers."""

from __future__ import annotations

import anyio
import pytest
from django.conf import settings
from django.urls import path

from achannels import Router, WebSocket
from achannels.routing import ProtocolTypeRouter, URLRouter

from .helpers import RawConnection, ws_scope

if not settings.configured:
    settings.configure(USE_I18N=False)

pytestmark = pytest.mark.anyio


def make_app() -> tuple[ProtocolTypeRouter, list[tuple[str, int]]]:
    router = Router()
    seen: list[tuple[str, int]] = []

    @router.websocket("/rooms/{room}/{seat:int}/")
    async def room(ws: WebSocket, room: str, seat: int) -> None:
        seen.append((room, seat))
        await ws.accept()
        await ws.close()

    app = ProtocolTypeRouter({"websocket": URLRouter([path("api/v1/", router)])})
    return app, seen


async def test_router_under_a_url_prefix_matches_the_rest_of_the_path() -> None:
    app, seen = make_app()
    conn = RawConnection(ws_scope("/api/v1/rooms/blue/3/"))
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, app)
        assert (await conn.output())["type"] == "websocket.accept"
        assert (await conn.output())["type"] == "websocket.close"
    assert seen == [("blue", 3)]
    conn.close()


async def test_router_under_a_prefix_denies_an_unknown_rest() -> None:
    app, seen = make_app()
    conn = RawConnection(ws_scope("/api/v1/rooms/blue/x/"))
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, app)
        denial = await conn.output()
    assert (denial["type"], denial["status"]) == ("websocket.http.response.start", 404)
    assert seen == []
    conn.close()


async def test_root_path_is_stripped_before_matching() -> None:
    router = Router()
    seen: list[str] = []

    @router.websocket("/ws/{name}/")
    async def consumer(ws: WebSocket, name: str) -> None:
        seen.append(name)
        await ws.close()

    conn = RawConnection(ws_scope("/prefix/ws/a/", root_path="/prefix"))
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        await conn.output()
    assert seen == ["a"]
    conn.close()
