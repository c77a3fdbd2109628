"""The example project served by hypercorn (trio and asyncio workers), end to end.

Each server is a subprocess on 127.0.0.1 running
``examples.django_project.asgi:application`` against one of the test databases;
the client is httpx + httpx-ws on the test's own AnyIO backend. Users log in through
Django's login view (or, where the test is not about logging in, with a session made
in this process); every client sends the ``Origin`` of the site, as a browser does.
Rows written through the server are read back both through a Django view and with
this process's ORM.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest
from httpx_ws import AsyncWebSocketSession, WebSocketUpgradeError

from achannels.db import database_sync_to_async
from examples.django_project.chat.consumers import BAD_MESSAGE_CODE, QUIT_CODE
from examples.django_project.chat.models import Message
from tests.e2e.clients import WAIT, open_client, open_ws, receive_close
from tests.e2e.servers import Server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.django]

PASSWORD = "correct horse battery staple"


def new_room() -> str:
    return f"room-{secrets.token_hex(4)}"


@database_sync_to_async
def stored(room: str) -> list[tuple[str | None, str]]:
    return list(Message.objects.filter(room=room).values_list("user__username", "text"))


@database_sync_to_async
def create_user(name: str, password: str | None = None) -> Any:
    return get_user_model().objects.create_user(f"{name}-{secrets.token_hex(4)}", password=password)


@database_sync_to_async
def session_of(user: Any) -> str:
    """Log ``user`` in as Django's ``login()`` does; return the session's key."""
    request = HttpRequest()
    request.session = SessionStore()
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    key: str = request.session.session_key
    return key


@asynccontextmanager
async def open_browser(server: Server, user: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client that behaves as a page of the site (``Origin``), logged in as ``user``."""
    async with open_client(server) as client:
        client.headers["origin"] = server.url
        if user is not None:
            client.cookies.set(settings.SESSION_COOKIE_NAME, await session_of(user))
        yield client


def csrf_token(page: httpx.Response) -> str:
    """The CSRF token of the form in ``page`` (its cookie is in the client by now)."""
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return token[1]


async def log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Post the login form as a browser does (its CSRF token included); return the answer."""
    form = await client.get("/accounts/login/", params={"next": "/chat/"})
    return await client.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "next": "/chat/",
            "csrfmiddlewaretoken": csrf_token(form),
        },
    )


async def receive(ws: AsyncWebSocketSession) -> dict[str, Any]:
    with anyio.fail_after(WAIT):
        frame: dict[str, Any] = json.loads(await ws.receive_text())
    return frame


async def enter(ws: AsyncWebSocketSession) -> list[dict[str, Any]]:
    """Read the history sent on joining, then the user's own join; return the history."""
    history = await receive(ws)
    assert history["type"] == "history"
    assert (await receive(ws))["type"] == "join"
    messages: list[dict[str, Any]] = history["messages"]
    return messages


async def say(ws: AsyncWebSocketSession, text: str) -> None:
    await ws.send_text(json.dumps({"message": text}))


def said(frame: dict[str, Any]) -> tuple[str | None, str]:
    return frame["user"], frame["message"]


async def test_log_in_with_django_then_chat_and_find_the_history(project_server: Server) -> None:
    room = new_room()
    alice, bob = await create_user("alice", PASSWORD), await create_user("bob")
    async with open_browser(project_server) as anonymous:
        refused = await log_in(anonymous, alice.username, "wrong")
        assert refused.status_code == 200
        assert "Please enter a correct username and password" in refused.text
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(anonymous, f"/ws/chat/{room}/"):
                pass
        assert denied.value.response.status_code == 403

    async with open_browser(project_server) as browser:
        answer = await log_in(browser, alice.username, PASSWORD)
        assert (answer.status_code, answer.headers["location"]) == (302, "/chat/")
        lobby = await browser.get("/chat/")
        assert alice.username in lobby.text
        async with open_ws(browser, f"/ws/chat/{room}/") as ws:
            assert await enter(ws) == []
            for text in ("héllo", "wörld"):
                await say(ws, text)
                assert said(await receive(ws)) == (alice.username, text)
        # The lobby's "Log out" button: Django's LogoutView, then no more chat.
        logout = {"csrfmiddlewaretoken": csrf_token(lobby)}
        answer = await browser.post("/accounts/logout/", data=logout)
        assert (answer.status_code, answer.headers["location"]) == (302, "/accounts/login/")
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(browser, f"/ws/chat/{room}/"):
                pass
        assert denied.value.response.status_code == 403

    # Later, from another process's point of view: the history comes from the database.
    async with (
        open_browser(project_server, bob) as browser,
        open_ws(browser, f"/ws/chat/{room}/") as ws,
    ):
        history = await enter(ws)
    assert [said(m) for m in history] == [(alice.username, "héllo"), (alice.username, "wörld")]
    assert await stored(room) == [(alice.username, "héllo"), (alice.username, "wörld")]


async def test_json_consumer_stores_rows_seen_by_view_and_orm(project_server: Server) -> None:
    room = new_room()
    alice = await create_user("alice")
    async with open_browser(project_server, alice) as client:
        async with open_ws(client, f"/ws/log/{room}/") as ws:
            for count, text in enumerate(["héllo", "wörld"], start=1):
                await ws.send_json({"text": text})
                with anyio.fail_after(WAIT):
                    reply = await ws.receive_json()
                assert (reply["text"], reply["count"]) == (text, count)
        response = await client.get(f"/rooms/{room}/messages/")
    assert response.status_code == 200
    assert response.json() == {"room": room, "count": 2, "texts": ["héllo", "wörld"]}
    assert await stored(room) == [(alice.username, "héllo"), (alice.username, "wörld")]


async def test_chat_group_relays_across_two_users(project_server: Server) -> None:
    room = new_room()
    alice, bob = await create_user("alice"), await create_user("bob")
    async with (
        open_browser(project_server, alice) as alice_browser,
        open_browser(project_server, bob) as bob_browser,
        open_ws(alice_browser, f"/ws/chat/{room}/") as a,
    ):
        await enter(a)
        async with open_ws(bob_browser, f"/ws/chat/{room}/") as b:
            await enter(b)
            assert await receive(a) == {"type": "join", "user": bob.username}
            await say(a, "hi bob")
            assert said(await receive(b)) == (alice.username, "hi bob")
            assert said(await receive(a)) == (alice.username, "hi bob")
            await say(b, "hi alice")
            assert said(await receive(a)) == (bob.username, "hi alice")
            assert said(await receive(b)) == (bob.username, "hi alice")
        assert await receive(a) == {"type": "leave", "user": bob.username}


async def test_close_codes(project_server: Server) -> None:
    async with open_browser(project_server, await create_user("alice")) as client:
        async with open_ws(client, f"/ws/chat/{new_room()}/") as ws:
            await enter(ws)
            await say(ws, "/quit")
            assert (await receive_close(ws))[0] == QUIT_CODE
        async with open_ws(client, f"/ws/chat/{new_room()}/") as ws:
            await enter(ws)
            await ws.send_text("not JSON")
            assert (await receive_close(ws))[0] == BAD_MESSAGE_CODE
        async with open_ws(client, f"/ws/log/{new_room()}/") as ws:
            await ws.send_json({"no": "text"})
            assert (await receive_close(ws))[0] == BAD_MESSAGE_CODE
        async with open_ws(client, f"/ws/log/{new_room()}/") as ws:
            await ws.send_bytes(b"\x00")  # JSON consumers refuse binary frames
            assert (await receive_close(ws))[0] == 1003
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, "/ws/chat/closed/"):
                pass
        assert denied.value.response.status_code == 403
        client.headers["origin"] = "http://evil.example"
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, f"/ws/chat/{new_room()}/"):
                pass
        assert denied.value.response.status_code == 403


async def test_plain_django_views(project_server: Server) -> None:
    async with open_client(project_server) as client:
        index = await client.get("/")
        missing = await client.get("/nowhere/")
        # A large body is read and answered: here by Django's CSRF protection.
        posted = await client.post("/", content=b"x" * 100_000)
        to_login = await client.get("/chat/")
        static = await client.get("/static/chat/room.js")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/plain"
    assert index.text == "achannels Django example\n"
    assert missing.status_code == 404
    assert posted.status_code == 403
    assert (to_login.status_code, to_login.headers["location"]) == (
        302,
        "/accounts/login/?next=/chat/",
    )
    assert static.status_code == 200
    assert "new WebSocket" in static.text
