"""Origin validation and BaseMiddleware."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test.utils import override_settings

from achannels._asgi import Receive, Scope, Send
from achannels.middleware import BaseMiddleware
from achannels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from achannels.testing import ApplicationCommunicator, WebsocketCommunicator

if not settings.configured:
    settings.configure(USE_I18N=False)

pytestmark = pytest.mark.anyio


async def accept_app(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()


async def connects(app: Any, origin: bytes | None) -> bool:
    headers = [(b"origin", origin)] if origin is not None else []
    async with WebsocketCommunicator(app, "/", headers=headers) as comm:
        connected, _ = await comm.connect()
        if connected:
            await comm.disconnect()
    return bool(connected)


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (["*"], b"http://anything.example", True),
        (["*"], None, True),
        (["example.com"], None, False),
        (["example.com"], b"http://example.com", True),
        (["example.com"], b"https://example.com:8443", True),
        (["example.com"], b"http://sub.example.com", False),
        ([".example.com"], b"http://sub.example.com", True),
        ([".example.com"], b"http://example.com", True),
        ([".example.com"], b"http://badexample.com", False),
        (["https://example.com"], b"https://example.com", True),
        (["https://example.com"], b"https://example.com:443", True),
        (["https://example.com"], b"http://example.com", False),
        (["http://example.com:8000"], b"http://example.com:8000", True),
        (["http://example.com:8000"], b"http://example.com", False),
        (["example.com"], b"http://ex\xc3\xa4mple.com", False),
    ],
)
async def test_origin_patterns(allowed: list[str], origin: bytes | None, expected: bool) -> None:
    assert await connects(OriginValidator(accept_app, allowed), origin) is expected


async def test_origin_validator_refuses_other_scope_types() -> None:
    with pytest.raises(ValueError, match="non-WebSocket"):
        await OriginValidator(accept_app, ["*"])({"type": "http"}, accept_app, accept_app)  # type: ignore[arg-type]


async def test_allowed_hosts_origin_validator() -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example"], DEBUG=False):
        app = AllowedHostsOriginValidator(accept_app)
        assert await connects(app, b"https://chat.example") is True
        assert await connects(app, b"https://localhost") is False
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert await connects(AllowedHostsOriginValidator(accept_app), b"http://localhost:8000")


async def test_base_middleware_copies_the_scope() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        scope["user"] = "ann"
        seen.append(scope)

    class Tagging(BaseMiddleware):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scope = dict(scope, tag="t")
            await super().__call__(scope, receive, send)

    original: dict[str, Any] = {"type": "websocket", "path": "/"}
    async with ApplicationCommunicator(Tagging(inner), original) as comm:
        await comm.wait()
    assert seen[0]["tag"] == "t"
    assert seen[0]["user"] == "ann"
    assert "user" not in original
    assert "tag" not in original
