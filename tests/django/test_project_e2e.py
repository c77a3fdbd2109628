"""The example project served by hypercorn (trio and asyncio workers), end to end.

Each server is a subprocess on 127.0.0.1 running
``examples.django_project.asgi:application`` against one of the test databases;
the client is httpx + httpx-ws on the test's own AnyIO backend. Rows written through
the server are read back both through a Django view and with this process's ORM.
"""

from __future__ import annotations

import secrets

import anyio
import pytest
from httpx_ws import WebSocketUpgradeError

from achannels.db import database_sync_to_async
from examples.django_project.chat.consumers import BAD_MESSAGE_CODE, QUIT_CODE
from examples.django_project.chat.models import Message
from tests.e2e.clients import WAIT, open_client, open_ws, receive_close
from tests.e2e.servers import Server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.django]


def new_room() -> str:
    return f"room-{secrets.token_hex(4)}"


@database_sync_to_async
def stored_texts(room: str) -> list[str]:
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


async def test_json_consumer_stores_rows_seen_by_view_and_orm(project_server: Server) -> None:
    room = new_room()
    async with open_client(project_server) as client:
        async with open_ws(client, f"/ws/log/{room}/") as ws:
            for count, text in enumerate(["héllo", "wörld"], start=1):
                await ws.send_json({"text": text})
                with anyio.fail_after(WAIT):
                    reply = await ws.receive_json()
                assert (reply["text"], reply["count"]) == (text, count)
        response = await client.get(f"/rooms/{room}/messages/")
    assert response.status_code == 200
    assert response.json() == {"room": room, "count": 2, "texts": ["héllo", "wörld"]}
    assert await stored_texts(room) == ["héllo", "wörld"]


async def test_chat_group_relays_across_two_connections(project_server: Server) -> None:
    room = new_room()
    async with (
        open_client(project_server) as client,
        open_ws(client, f"/ws/chat/{room}/") as alice,
        open_ws(client, f"/ws/chat/{room}/") as bob,
    ):
        await alice.send_text("hi bob")
        with anyio.fail_after(WAIT):
            assert await bob.receive_text() == "hi bob"
            assert await alice.receive_text() == "hi bob"
        await bob.send_text("hi alice")
        with anyio.fail_after(WAIT):
            assert await alice.receive_text() == "hi alice"
            assert await bob.receive_text() == "hi alice"


async def test_close_codes(project_server: Server) -> None:
    async with open_client(project_server) as client:
        async with open_ws(client, f"/ws/chat/{new_room()}/") as ws:
            await ws.send_text("/quit")
            assert (await receive_close(ws))[0] == QUIT_CODE
        async with open_ws(client, f"/ws/log/{new_room()}/") as ws:
            await ws.send_json({"no": "text"})
            assert (await receive_close(ws))[0] == BAD_MESSAGE_CODE
        async with open_ws(client, f"/ws/log/{new_room()}/") as ws:
            await ws.send_bytes(b"\x00")  # JSON consumers refuse binary frames: an error
            assert (await receive_close(ws))[0] == 1011
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, "/ws/chat/closed/"):
                pass
        assert denied.value.response.status_code == 403


async def test_plain_django_views(project_server: Server) -> None:
    async with open_client(project_server) as client:
        index = await client.get("/")
        missing = await client.get("/nowhere/")
        posted = await client.post("/", content=b"x" * 100_000)
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/plain"
    assert index.text == "achannels Django example\n"
    assert missing.status_code == 404
    assert posted.status_code == 200
