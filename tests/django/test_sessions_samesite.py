"""``SESSION_COOKIE_SAMESITE`` as Channels applies it: the cookie's attribute, or its error.

Channels' own tests run an ``AsyncConsumer`` that saves the session under
``SessionMiddlewareStack`` and expect an invalid setting to fail the response with
``AssertionError``; these tests do the same, on asyncio and trio.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test.utils import override_settings

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer
from achannels.db import database_sync_to_async
from achannels.generic.http import AsyncHttpConsumer
from achannels.sessions import CookieMiddleware, SessionMiddlewareStack
from achannels.testing import HttpCommunicator
from tests.django.conftest import Database

pytestmark = pytest.mark.django

CHANNELS_MESSAGE = "samesite must be either 'strict', 'lax' or 'none'"


def save(session: Any) -> None:
    session.save()


def write(session: Any) -> None:
    session["seen"] = True


class SavesTheSession(AsyncConsumer):
    """Channels' test app: saves the session, then answers 200 (handles only requests)."""

    async def http_request(self, message: Message) -> None:
        await database_sync_to_async(save)(self.scope["session"])
        await self.send({"type": "http.response.start", "status": 200, "headers": []})
        await self.send({"type": "http.response.body", "body": b"test response"})


class WritesTheSession(AsyncHttpConsumer):
    """Puts a value in the session, so that the response sets the session cookie."""

    async def handle(self, body: bytes) -> None:
        await database_sync_to_async(write)(self.scope["session"])
        await self.send_response(200, b"ok")


def samesite_of(response: dict[str, Any]) -> str:
    [(name, value)] = response["headers"]
    assert name == b"Set-Cookie"
    found = re.search(r"SameSite=(\w+)", value.decode())
    assert found is not None
    return found.group(1)


@pytest.mark.anyio
@pytest.mark.parametrize("samesite", ["Strict", "Lax", "None"])
async def test_the_session_cookie_carries_the_setting(database: Database, samesite: str) -> None:
    app = SessionMiddlewareStack(WritesTheSession.as_asgi())
    with override_settings(SESSION_COOKIE_SAMESITE=samesite):
        response = await HttpCommunicator(app, "GET", "/test/").get_response()
    assert response["status"] == 200
    assert samesite_of(response) == samesite


@pytest.mark.anyio
async def test_an_invalid_setting_raises_channels_error_and_message(database: Database) -> None:
    app = SessionMiddlewareStack(SavesTheSession.as_asgi())
    with (
        override_settings(SESSION_COOKIE_SAMESITE="Hello"),
        pytest.raises(AssertionError, match=re.escape(CHANNELS_MESSAGE)) as caught,
    ):
        await HttpCommunicator(app, "GET", "/test/").get_response()
    assert str(caught.value) == CHANNELS_MESSAGE


@pytest.mark.anyio
async def test_an_invalid_setting_fails_an_http_consumer_too(database: Database) -> None:
    app = SessionMiddlewareStack(WritesTheSession.as_asgi())
    with (
        override_settings(SESSION_COOKIE_SAMESITE="sometimes"),
        pytest.raises(AssertionError, match=re.escape(CHANNELS_MESSAGE)),
    ):
        await HttpCommunicator(app, "GET", "/test/").get_response()


def test_set_cookie_raises_channels_error_which_is_also_a_value_error() -> None:
    with pytest.raises(AssertionError, match=re.escape(CHANNELS_MESSAGE)) as caught:
        CookieMiddleware.set_cookie({}, "k", samesite="sometimes")
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == CHANNELS_MESSAGE
