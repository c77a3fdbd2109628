"""The example project's consumers and views, in process, on SQLite and PostgreSQL.

Each test runs the project's real ``application`` (``examples.django_project.asgi``)
through achannels' communicators, on asyncio and trio, against a migrated test
database. Users are logged in as Django's ``login()`` does it (a session in the
session store, its key in the cookie); every WebSocket client sends the ``Origin`` of
a page of the site, as a browser does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.test.utils import override_settings

from achannels.db import database_sync_to_async
from achannels.layers import InMemoryChannelLayer
from achannels.testing import HttpCommunicator, WebsocketCommunicator
from examples.django_project.asgi import application
from examples.django_project.chat.consumers import (
    BAD_MESSAGE_CODE,
    HISTORY_LENGTH,
    MAX_MESSAGE_LENGTH,
    QUIT_CODE,
    room_group,
)
from examples.django_project.chat.management.commands.createdemousers import DEMO_PASSWORD
from examples.django_project.chat.models import Message
from tests.django.conftest import Database

pytestmark = pytest.mark.anyio

Headers = list[tuple[bytes, bytes]]
#: What a page of the site sends (``testserver`` is in ``ALLOWED_HOSTS``).
ORIGIN: Headers = [(b"origin", b"http://testserver")]
#: Seconds to wait for a reply that needs the database.
WAIT = 5


def new_room() -> str:
    """A room name no other test uses (the test databases live for the session)."""
    return f"room-{secrets.token_hex(4)}"


@database_sync_to_async
def stored(room: str) -> list[tuple[str | None, str]]:
    """The ``(username, text)`` of each message stored for ``room``, oldest first."""
    return list(Message.objects.filter(room=room).values_list("user__username", "text"))


@database_sync_to_async
def stored_texts(room: str) -> list[str]:
    """The texts stored for ``room``, oldest first (in a worker thread)."""
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


@database_sync_to_async
def store(room: str, *texts: str, user: Any = None) -> list[int]:
    """Store ``texts`` in ``room`` directly with the ORM; return their ids."""
    return [Message.objects.create(room=room, text=text, user=user).pk for text in texts]


@database_sync_to_async
def create_user(name: str) -> Any:
    """A new user whose name starts with ``name`` (no password: it logs in by session)."""
    return get_user_model().objects.create_user(f"{name}-{secrets.token_hex(4)}")


@database_sync_to_async
def logged_in(user: Any) -> Headers:
    """Log ``user`` in as a Django view would; return a browser's headers for the site."""
    request = HttpRequest()
    request.session = SessionStore()
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={request.session.session_key}"
    return [*ORIGIN, (b"cookie", cookie.encode())]


async def joined(comm: WebsocketCommunicator) -> list[dict[str, Any]]:
    """Connect ``comm`` to a chat room; return the history it gets first (its join follows)."""
    assert (await comm.connect())[0]
    first = await comm.receive_json_from(timeout=WAIT)
    assert first["type"] == "history"
    history: list[dict[str, Any]] = first["messages"]
    return history


async def next_frame(comm: WebsocketCommunicator) -> dict[str, Any]:
    frame: dict[str, Any] = await comm.receive_json_from(timeout=WAIT)
    return frame


async def say(comm: WebsocketCommunicator, text: str) -> None:
    await comm.send_json_to({"message": text})


def said(frame: dict[str, Any]) -> tuple[str, str | None, str]:
    """The kind, author and text of a chat frame (without its id and time)."""
    return frame["type"], frame["user"], frame["message"]


# -- the chat room ------------------------------------------------------------------


async def test_chat_relays_between_two_users_with_their_names(database: Database) -> None:
    room = new_room()
    alice, bob, carol = [await create_user(name) for name in ("alice", "bob", "carol")]
    async with (
        WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(alice)) as a,
        WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(bob)) as b,
        WebsocketCommunicator(
            application, f"/ws/chat/{new_room()}/", await logged_in(carol)
        ) as elsewhere,
    ):
        assert await joined(a) == []
        assert await next_frame(a) == {"type": "join", "user": alice.username}
        assert await joined(b) == []
        assert await next_frame(b) == {"type": "join", "user": bob.username}
        assert await next_frame(a) == {"type": "join", "user": bob.username}
        assert await joined(elsewhere) == []
        assert await next_frame(elsewhere) == {"type": "join", "user": carol.username}

        await say(a, "hello from alice")
        for comm in (a, b):
            assert said(await next_frame(comm)) == ("message", alice.username, "hello from alice")
        await say(b, "  hi alice  ")
        for comm in (a, b):
            assert said(await next_frame(comm)) == ("message", bob.username, "hi alice")
        assert await elsewhere.receive_nothing()

        await b.disconnect()
        assert await next_frame(a) == {"type": "leave", "user": bob.username}
        await say(a, "anyone?")
        assert said(await next_frame(a)) == ("message", alice.username, "anyone?")
        await a.disconnect()
        await elsewhere.disconnect()
    assert await stored(room) == [
        (alice.username, "hello from alice"),
        (bob.username, "hi alice"),
        (alice.username, "anyone?"),
    ]


async def test_joining_sends_the_history_from_the_database(database: Database) -> None:
    room = new_room()
    alice, bob = await create_user("alice"), await create_user("bob")
    await store(room, *(f"old {n}" for n in range(HISTORY_LENGTH)), user=alice)
    await store(room, "archived")  # no author, as the archive worker stores them
    async with WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(alice)) as a:
        history = await joined(a)
        await next_frame(a)  # her own join
        await say(a, "latest")
        message = await next_frame(a)
        await a.disconnect()
    # The last HISTORY_LENGTH messages, oldest first, with their authors' names.
    assert len(history) == HISTORY_LENGTH
    assert [(m["user"], m["message"]) for m in history[-2:]] == [
        (alice.username, f"old {HISTORY_LENGTH - 1}"),
        (None, "archived"),
    ]
    assert history[0]["message"] == "old 1"
    assert [m["id"] for m in history] == sorted(m["id"] for m in history)

    async with WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(bob)) as b:
        later = await joined(b)
        await b.disconnect()
    assert later[-1] == {k: message[k] for k in ("id", "user", "message", "created")}
    assert later[-2]["message"] == "archived"


async def test_a_message_already_in_the_history_is_not_sent_again(
    database: Database, fresh_channel_layer: InMemoryChannelLayer
) -> None:
    # A message stored while a user joins can reach it twice: in the history and as
    # the live event of the message. It is shown once.
    room = new_room()
    alice = await create_user("alice")
    [old] = await store(room, "stored while alice joined", user=alice)
    async with WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(alice)) as a:
        [history] = await joined(a)
        await next_frame(a)  # her own join
        late = {**history, "type": "chat.message"}
        assert late["id"] == old
        await fresh_channel_layer.group_send(room_group(room), late)
        await say(a, "new")
        assert said(await next_frame(a)) == ("message", alice.username, "new")
        await a.disconnect()


async def test_chat_leaves_its_group_on_disconnect(
    database: Database, fresh_channel_layer: InMemoryChannelLayer
) -> None:
    room = new_room()
    headers = await logged_in(await create_user("alice"))
    async with WebsocketCommunicator(application, f"/ws/chat/{room}/", headers) as comm:
        await joined(comm)
        assert fresh_channel_layer.statistics().group_members == 1
        await comm.disconnect()
    assert fresh_channel_layer.statistics().group_members == 0


async def test_chat_refuses_anonymous_users_other_sites_and_the_closed_room(
    database: Database,
) -> None:
    headers = await logged_in(await create_user("alice"))
    # A close before accept: servers answer the handshake with 403.
    refused = [
        (f"/ws/chat/{new_room()}/", ORIGIN),  # not logged in
        (f"/ws/chat/{new_room()}/", headers[1:]),  # no Origin: not a page of the site
        (f"/ws/chat/{new_room()}/", [(b"origin", b"http://evil.example"), headers[1]]),
        ("/ws/chat/closed/", headers),
        (f"/ws/chat/{'x' * 65}/", headers),  # longer than a room name may be
    ]
    for path, client_headers in refused:
        async with WebsocketCommunicator(application, path, client_headers) as comm:
            assert await comm.connect() == (False, 1000), path


async def test_chat_quit_and_bad_frames_close_with_their_codes(database: Database) -> None:
    headers = await logged_in(await create_user("alice"))
    for frame, code in [
        (json.dumps({"message": "/quit"}), QUIT_CODE),
        ("not json", BAD_MESSAGE_CODE),
        (json.dumps({"text": "the log consumer's format"}), BAD_MESSAGE_CODE),
        (json.dumps(["message"]), BAD_MESSAGE_CODE),
    ]:
        async with WebsocketCommunicator(application, f"/ws/chat/{new_room()}/", headers) as comm:
            await joined(comm)
            await next_frame(comm)  # the join
            await comm.send_to(text_data=frame)
            with pytest.raises(AssertionError, match=f"code {code}"):
                await comm.receive_from(timeout=WAIT)
            assert comm.close_code == code


async def test_a_long_message_is_refused_to_its_sender_only(database: Database) -> None:
    room = new_room()
    alice, bob = await create_user("alice"), await create_user("bob")
    async with (
        WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(alice)) as a,
        WebsocketCommunicator(application, f"/ws/chat/{room}/", await logged_in(bob)) as b,
    ):
        await joined(a)
        await next_frame(a)  # her own join
        await joined(b)
        await next_frame(b)  # his own join
        await next_frame(a)  # his join
        await say(a, "x" * (MAX_MESSAGE_LENGTH + 1))
        error = await next_frame(a)
        assert error["type"] == "error"
        assert f"at most {MAX_MESSAGE_LENGTH} characters" in error["error"]
        await say(a, "   ")  # blank: nothing to send
        await say(a, "x" * MAX_MESSAGE_LENGTH)
        for comm in (a, b):
            assert said(await next_frame(comm)) == ("message", alice.username, "x" * 2000)
        await a.disconnect()
        await b.disconnect()
    assert await stored_texts(room) == ["x" * MAX_MESSAGE_LENGTH]


# -- the sync JSON consumer ---------------------------------------------------------


async def test_log_consumer_saves_rows_through_the_orm(database: Database) -> None:
    room = new_room()
    alice = await create_user("alice")
    await store(room, "already there")
    async with WebsocketCommunicator(
        application, f"/ws/log/{room}/", await logged_in(alice)
    ) as comm:
        assert (await comm.connect())[0]
        for number, text in enumerate(["first", "second", "third"], start=2):
            await comm.send_json_to({"text": text})
            reply = await comm.receive_json_from(timeout=WAIT)
            assert reply["text"] == text
            assert reply["count"] == number
        await comm.disconnect()
    assert await stored(room) == [
        (None, "already there"),
        (alice.username, "first"),
        (alice.username, "second"),
        (alice.username, "third"),
    ]


async def test_log_consumer_closes_on_a_message_without_text(database: Database) -> None:
    room = new_room()
    headers = await logged_in(await create_user("alice"))
    async with WebsocketCommunicator(application, f"/ws/log/{room}/", headers) as comm:
        assert (await comm.connect())[0]
        await comm.send_json_to({"nope": 1})
        with pytest.raises(AssertionError, match=f"code {BAD_MESSAGE_CODE}"):
            await comm.receive_from(timeout=WAIT)
    async with WebsocketCommunicator(application, f"/ws/log/{room}/", ORIGIN) as anonymous:
        assert await anonymous.connect() == (False, 1000)
    assert await stored_texts(room) == []


async def test_log_consumer_connections_share_the_database(database: Database) -> None:
    room = new_room()
    headers = await logged_in(await create_user("alice"))
    async with (
        WebsocketCommunicator(application, f"/ws/log/{room}/", headers) as one,
        WebsocketCommunicator(application, f"/ws/log/{room}/", headers) as two,
    ):
        assert (await one.connect())[0]
        assert (await two.connect())[0]
        await one.send_json_to({"text": "a"})
        assert (await one.receive_json_from(timeout=WAIT))["count"] == 1
        await two.send_json_to({"text": "b"})
        assert (await two.receive_json_from(timeout=WAIT))["count"] == 2
        await one.disconnect()
        await two.disconnect()


async def test_whoami_tells_who_is_logged_in(database: Database) -> None:
    alice = await create_user("alice")
    for headers, expected in [(await logged_in(alice), alice.username), (ORIGIN, None)]:
        async with WebsocketCommunicator(application, "/ws/whoami/", headers) as comm:
            assert (await comm.connect())[0]
            assert await comm.receive_json_from(timeout=WAIT) == {"username": expected}
            await comm.disconnect()


# -- the Django views ---------------------------------------------------------------


async def get(path: str, headers: Headers = ORIGIN) -> dict[str, Any]:
    """GET ``path`` from the project (with the Host header a server would pass)."""
    async with HttpCommunicator(
        application, "GET", path, headers=[(b"host", b"testserver"), *headers]
    ) as communicator:
        return await communicator.get_response(timeout=WAIT)


def location(response: dict[str, Any]) -> str:
    headers: dict[bytes, bytes] = {name.lower(): value for name, value in response["headers"]}
    return headers[b"location"].decode()


async def test_django_views_answer_through_the_handler(database: Database) -> None:
    room = new_room()
    await store(room, "x", "y")
    index = await get("/")
    assert index["status"] == 200
    assert index["body"] == b"achannels Django example\n"
    headers = await logged_in(await create_user("alice"))
    listing = await get(f"/rooms/{room}/messages/", headers)
    assert listing["status"] == 200
    assert json.loads(listing["body"]) == {"room": room, "count": 2, "texts": ["x", "y"]}
    assert (await get(f"/rooms/{room}/messages/"))["status"] == 403  # not logged in
    assert (await get("/nowhere/"))["status"] == 404


async def test_the_pages_need_a_login(database: Database) -> None:
    login = await get("/accounts/login/")
    assert login["status"] == 200
    assert b'name="csrfmiddlewaretoken"' in login["body"]
    assert b'id="id_username"' in login["body"]
    for path in ("/chat/", "/chat/lobby/"):
        response = await get(path)
        assert response["status"] == 302
        assert location(response) == f"/accounts/login/?next={path}"


async def test_the_lobby_lists_rooms_and_leads_to_them(database: Database) -> None:
    room = new_room()
    await store(room, "one", "two")
    alice = await create_user("alice")
    headers = await logged_in(alice)
    lobby = await get("/chat/", headers)
    assert lobby["status"] == 200
    assert alice.username.encode() in lobby["body"]
    assert f'<a href="/chat/{room}/">{room}</a>'.encode() in lobby["body"]
    entered = await get(f"/chat/?room={room}", headers)
    assert (entered["status"], location(entered)) == (302, f"/chat/{room}/")
    invalid = await get("/chat/?room=not+a+slug", headers)
    assert invalid["status"] == 200
    assert b'id="room-error"' in invalid["body"]
    page = await get(f"/chat/{room}/", headers)
    assert page["status"] == 200
    assert (
        f'<script id="room-json" type="application/json">"{room}"</script>'.encode()
        in (page["body"])
    )
    assert (await get(f"/chat/{'x' * 65}/", headers))["status"] == 404


# -- the demo users -----------------------------------------------------------------


@pytest.fixture
def fast_hasher() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.mark.usefixtures("fast_hasher")
def test_createdemousers_makes_users_that_can_log_in(database: Database) -> None:
    names = [f"demo-{secrets.token_hex(4)}" for _ in range(2)]
    users = get_user_model().objects
    users.create_user(names[0], password="their own")
    with override_settings(DEBUG=True):
        call_command("createdemousers", *names, verbosity=0)
        call_command("createdemousers", names[1], password="other", verbosity=0)
    assert auth.authenticate(username=names[0], password="their own") is not None
    assert auth.authenticate(username=names[1], password=DEMO_PASSWORD) is not None
    with override_settings(DEBUG=False), pytest.raises(CommandError, match="DEBUG on only"):
        call_command("createdemousers", "nobody")
    assert not users.filter(username="nobody").exists()
