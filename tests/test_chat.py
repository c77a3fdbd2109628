"""The chat demo (``examples/chat/app.py``), in process, through the test communicators.

The app module holds one module-level layer shared by every test, so each test uses
rooms of its own and leaves nobody connected behind it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import fields
from typing import Any

import pytest

from achannels import RuntimeStatistics
from achannels.layers import LayerStatistics
from achannels.testing import HttpCommunicator, WebsocketCommunicator
from examples.chat.app import MAX_MESSAGE, app, layer

pytestmark = pytest.mark.anyio


def new_room() -> str:
    """Return a room name no other test uses (a valid ``slug``)."""
    return f"room-{secrets.token_hex(4)}"


async def get(path: str) -> dict[str, Any]:
    """Return the demo's response to ``GET path``."""
    async with HttpCommunicator(app, "GET", path) as comm:
        return await comm.get_response()


def content_type(response: dict[str, Any]) -> str:
    """Return the response's ``content-type`` header, decoded."""
    headers = {name.lower(): value for name, value in response["headers"]}
    return bytes(headers[b"content-type"]).decode("latin-1")


async def expect_error(comm: WebsocketCommunicator) -> str:
    """Return the ``error`` of the next frame, which must be an error reply."""
    reply = await comm.receive_json_from()
    assert set(reply) == {"error"}, reply
    assert isinstance(reply["error"], str)
    return reply["error"]


@asynccontextmanager
async def member(room: str) -> AsyncIterator[WebsocketCommunicator]:
    """Join ``room``; return once the member is certainly in the room's group.

    The consumer joins the group before it accepts, so ``connect()`` returning already
    means membership; the error round trip (answered to its sender only) also proves
    the member's receive loop is running before the test relies on who hears what.
    """
    async with WebsocketCommunicator(app, f"/ws/chat/{room}/") as comm:
        assert await comm.connect() == (True, None)
        await comm.send_json_to({})
        await expect_error(comm)
        yield comm
        await comm.disconnect()


async def test_room_members_get_a_message_and_other_rooms_do_not() -> None:
    room, elsewhere = new_room(), new_room()
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(member(room))
        bob = await stack.enter_async_context(member(room))
        carol = await stack.enter_async_context(member(elsewhere))

        await alice.send_json_to({"message": "hello, room"})
        assert await alice.receive_json_from() == {"message": "hello, room"}
        assert await bob.receive_json_from() == {"message": "hello, room"}

        # Had carol got it, it would have been queued before her own message.
        await carol.send_json_to({"message": "anyone?"})
        assert await carol.receive_json_from() == {"message": "anyone?"}
        assert await alice.receive_nothing()
        assert await bob.receive_nothing()


async def test_a_members_messages_arrive_in_order() -> None:
    room = new_room()
    async with member(room) as alice, member(room) as bob:
        for n in range(20):
            await alice.send_json_to({"message": f"#{n}"})
        for comm in (alice, bob):
            got = [await comm.receive_json_from() for _ in range(20)]
            assert got == [{"message": f"#{n}"} for n in range(20)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="no-message"),
        pytest.param({"message": 42}, id="not-a-string"),
        pytest.param({"message": None}, id="null"),
        pytest.param({"message": ["hi"]}, id="list"),
        pytest.param({"text": "hi"}, id="wrong-key"),
        pytest.param(["hi"], id="array"),
        pytest.param("hi", id="json-string"),
        pytest.param({"message": ""}, id="empty"),
        pytest.param({"message": "x" * (MAX_MESSAGE + 1)}, id="too-long"),
    ],
)
async def test_malformed_message_gets_an_error_and_the_socket_stays_open(data: Any) -> None:
    room = new_room()
    async with member(room) as alice, member(room) as bob:
        await alice.send_json_to(data)
        assert str(MAX_MESSAGE) in await expect_error(alice)
        assert await bob.receive_nothing()  # errors go to the sender only

        await alice.send_json_to({"message": "still here"})
        assert await alice.receive_json_from() == {"message": "still here"}
        assert await bob.receive_json_from() == {"message": "still here"}


async def test_longest_message_is_relayed() -> None:
    text = "é" * MAX_MESSAGE
    async with member(new_room()) as alice:
        await alice.send_json_to({"message": text})
        assert await alice.receive_json_from() == {"message": text}


@pytest.mark.parametrize("frame", ["not json", "{", ""])
async def test_non_json_text_closes_with_1007(frame: str) -> None:
    room = new_room()
    async with member(room) as bob:
        async with WebsocketCommunicator(app, f"/ws/chat/{room}/") as alice:
            assert await alice.connect() == (True, None)
            await alice.send_to(text_data=frame)
            close = await alice.receive_output()
            assert close["type"] == "websocket.close"
            assert alice.close_code == 1007
        # The room lives on for the others.
        assert await bob.receive_nothing()
        await bob.send_json_to({"message": "still here"})
        assert await bob.receive_json_from() == {"message": "still here"}


async def test_binary_frame_closes_with_1003() -> None:
    async with WebsocketCommunicator(app, f"/ws/chat/{new_room()}/") as comm:
        assert await comm.connect() == (True, None)
        await comm.send_to(bytes_data=json.dumps({"message": "hi"}).encode())
        close = await comm.receive_output()
        assert close["type"] == "websocket.close"
        assert comm.close_code == 1003


async def test_frame_over_the_size_limit_closes_with_1009() -> None:
    async with WebsocketCommunicator(app, f"/ws/chat/{new_room()}/") as comm:
        assert await comm.connect() == (True, None)
        await comm.send_json_to({"message": "x" * (16 * 1024)})
        close = await comm.receive_output()
        assert close["type"] == "websocket.close"
        assert comm.close_code == 1009


async def test_lobby_page_is_html() -> None:
    response = await get("/")
    assert response["status"] == 200
    assert content_type(response).startswith("text/html")
    body = response["body"].decode()
    assert '<form id="pick">' in body
    assert 'id="room-name"' in body


async def test_room_page_is_html() -> None:
    response = await get(f"/chat/{new_room()}/")
    assert response["status"] == 200
    assert content_type(response).startswith("text/html")
    body = response["body"].decode()
    assert 'id="chat-log"' in body
    assert 'id="chat-message-input"' in body
    assert "/ws/chat/" in body


@pytest.mark.parametrize("path", ["/chat/no%20spaces/", "/chat/", "/nowhere/"])
async def test_unknown_pages_are_404(path: str) -> None:
    response = await get(path)
    assert response["status"] == 404


async def test_invalid_room_name_is_refused() -> None:
    async with WebsocketCommunicator(app, "/ws/chat/no%20spaces/") as comm:
        connected, _ = await comm.connect()
        assert not connected


async def test_stats_returns_the_counters() -> None:
    room = new_room()
    async with member(room), member(room):
        response = await get("/stats")
        assert response["status"] == 200
        assert content_type(response).startswith("application/json")
        stats = json.loads(response["body"])
        assert set(stats) == {"runtime", "layer"}
        assert set(stats["runtime"]) == {f.name for f in fields(RuntimeStatistics)}
        assert set(stats["layer"]) == {f.name for f in fields(LayerStatistics)}
        for counters in stats.values():
            assert all(isinstance(value, int) for value in counters.values()), counters
        # The two members and the /stats request itself.
        assert stats["runtime"]["connections_live"] >= 3
        assert stats["layer"]["group_members"] >= 2
        assert stats["layer"]["groups"] >= 1


async def test_everyone_leaves_no_group_member_behind() -> None:
    rooms = [new_room(), new_room()]
    async with AsyncExitStack() as stack:
        members = [await stack.enter_async_context(member(room)) for room in rooms * 3]
        assert layer.statistics().group_members >= len(members)
        await members[0].send_json_to({"message": "bye"})
        for comm in members[::2]:
            assert await comm.receive_json_from() == {"message": "bye"}
    stats = layer.statistics()
    assert stats.group_members == 0
    assert stats.groups == 0
    assert app.statistics().connections_live == 0
    assert app.statistics().tasks_live == 0


async def test_a_room_name_too_long_for_a_group_is_denied() -> None:
    async with WebsocketCommunicator(app, f"/ws/chat/{'r' * 95}/") as comm:
        assert await comm.connect() == (False, 400)
