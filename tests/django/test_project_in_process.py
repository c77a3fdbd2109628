"""The example project's consumers and views, in process, on SQLite and PostgreSQL.

Each test runs the project's real ``application`` (``examples.django_project.asgi``)
through achannels' communicators, on asyncio and trio, against a migrated test
database.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from achannels.db import database_sync_to_async
from achannels.layers import InMemoryChannelLayer
from achannels.testing import HttpCommunicator, WebsocketCommunicator
from examples.django_project.asgi import application
from examples.django_project.chat.consumers import BAD_MESSAGE_CODE, QUIT_CODE
from examples.django_project.chat.models import Message
from tests.django.conftest import Database

pytestmark = pytest.mark.anyio


def new_room() -> str:
    """A room name no other test uses (the test databases live for the session)."""
    return f"room-{secrets.token_hex(4)}"


@database_sync_to_async
def stored_texts(room: str) -> list[str]:
    """The texts stored for ``room``, oldest first (in a worker thread)."""
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


@database_sync_to_async
def store(room: str, *texts: str) -> None:
    """Store ``texts`` in ``room`` directly with the ORM."""
    Message.objects.bulk_create([Message(room=room, text=text) for text in texts])


async def test_chat_relays_between_two_connections() -> None:
    room = new_room()
    async with (
        WebsocketCommunicator(application, f"/ws/chat/{room}/") as alice,
        WebsocketCommunicator(application, f"/ws/chat/{room}/") as bob,
        WebsocketCommunicator(application, f"/ws/chat/{new_room()}/") as elsewhere,
    ):
        assert (await alice.connect())[0]
        assert (await bob.connect())[0]
        assert (await elsewhere.connect())[0]
        await alice.send_to(text_data="hello from alice")
        assert await alice.receive_from() == "hello from alice"
        assert await bob.receive_from() == "hello from alice"
        await bob.send_to(text_data="hi alice")
        assert await alice.receive_from() == "hi alice"
        assert await bob.receive_from() == "hi alice"
        assert await elsewhere.receive_nothing()
        await bob.disconnect()
        await alice.send_to(text_data="anyone?")
        assert await alice.receive_from() == "anyone?"
        await alice.disconnect()
        await elsewhere.disconnect()


async def test_chat_leaves_its_group_on_disconnect(
    fresh_channel_layer: InMemoryChannelLayer,
) -> None:
    room = new_room()
    async with WebsocketCommunicator(application, f"/ws/chat/{room}/") as comm:
        assert (await comm.connect())[0]
        assert fresh_channel_layer.statistics().group_members == 1
        await comm.disconnect()
    assert fresh_channel_layer.statistics().group_members == 0


async def test_chat_quit_closes_with_its_code_and_a_closed_room_refuses() -> None:
    async with WebsocketCommunicator(application, f"/ws/chat/{new_room()}/") as comm:
        assert (await comm.connect())[0]
        await comm.send_to(text_data="/quit")
        with pytest.raises(AssertionError, match=f"code {QUIT_CODE}"):
            await comm.receive_from()
        assert comm.close_code == QUIT_CODE
    async with WebsocketCommunicator(application, "/ws/chat/closed/") as refused:
        # A close before accept: servers answer the handshake with 403.
        assert await refused.connect() == (False, 1000)


async def test_log_consumer_saves_rows_through_the_orm(database: Database) -> None:
    room = new_room()
    await store(room, "already there")
    async with WebsocketCommunicator(application, f"/ws/log/{room}/") as comm:
        assert (await comm.connect())[0]
        for number, text in enumerate(["first", "second", "third"], start=2):
            await comm.send_json_to({"text": text})
            reply = await comm.receive_json_from(timeout=5)
            assert reply["text"] == text
            assert reply["count"] == number
        await comm.disconnect()
    assert await stored_texts(room) == ["already there", "first", "second", "third"]


async def test_log_consumer_closes_on_a_message_without_text(database: Database) -> None:
    room = new_room()
    async with WebsocketCommunicator(application, f"/ws/log/{room}/") as comm:
        assert (await comm.connect())[0]
        await comm.send_json_to({"nope": 1})
        with pytest.raises(AssertionError, match=f"code {BAD_MESSAGE_CODE}"):
            await comm.receive_from(timeout=5)
    assert await stored_texts(room) == []


async def test_log_consumer_connections_share_the_database(database: Database) -> None:
    room = new_room()
    async with (
        WebsocketCommunicator(application, f"/ws/log/{room}/") as one,
        WebsocketCommunicator(application, f"/ws/log/{room}/") as two,
    ):
        assert (await one.connect())[0]
        assert (await two.connect())[0]
        await one.send_json_to({"text": "a"})
        assert (await one.receive_json_from(timeout=5))["count"] == 1
        await two.send_json_to({"text": "b"})
        assert (await two.receive_json_from(timeout=5))["count"] == 2
        await one.disconnect()
        await two.disconnect()


async def get(path: str) -> dict[str, Any]:
    """GET ``path`` from the project (with the Host header a server would pass)."""
    communicator = HttpCommunicator(application, "GET", path, headers=[(b"host", b"testserver")])
    return await communicator.get_response(timeout=5)


async def test_django_views_answer_through_the_handler(database: Database) -> None:
    room = new_room()
    await store(room, "x", "y")
    index = await get("/")
    assert index["status"] == 200
    assert index["body"] == b"achannels Django example\n"
    listing = await get(f"/rooms/{room}/messages/")
    assert listing["status"] == 200
    assert json.loads(listing["body"]) == {"room": room, "count": 2, "texts": ["x", "y"]}
    assert (await get("/nowhere/"))["status"] == 404
