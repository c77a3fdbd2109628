"""SIGTERM under plain hypercorn: class consumers get the normal close function consumers get.

Under plain ``hypercorn --worker-class trio|asyncio`` (not ``python -m achannels
serve``), docs/deployment.md ("Graceful shutdown") says: on SIGTERM hypercorn waits
``--graceful-timeout`` seconds, then cancels the connection tasks and sends no close
frame itself; "the achannels runtime, cancelled, still sends a normal 1000 close where
it can". The shutdown close codes 1001/1012 belong to ``serve`` and to the router's
lifespan shutdown, which plain hypercorn reaches only after the connections are gone.

Function consumers (``@router.websocket``) always got that 1000; class consumers used to
get 1011 on the asyncio worker (hypercorn's own close for an app that never closed)
and no close frame at all on the trio worker. These tests run Channels-style apps (a
``ProtocolTypeRouter`` over a ``URLRouter``, and a class consumer as the app itself)
with the in-memory layer, sync and async, with the consumer in a group, and the native
function consumer for comparison.

The server side lives in this module: hypercorn evaluates what follows the colon of
``module:app`` in the module's namespace, so it serves the factory call
``build_app(layer=True)`` (which configures Django the way a project's ``asgi.py``
would). SIGTERM ends the server, so each test starts one of its own.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketNetworkError

from achannels import Router, WebSocket
from achannels._asgi import ASGIApp
from achannels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    WebsocketConsumer,
)
from achannels.routing import ProtocolTypeRouter, URLRouter
from achannels.sync import async_to_sync

from .clients import WAIT, open_client, open_ws
from .servers import HYPERCORN, Server, start_server, use_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.django]

#: The close code docs/deployment.md gives for plain hypercorn's SIGTERM (not 1001:
#: that is ``serve``'s ``--shutdown-close-code``, which plain hypercorn never applies).
NORMAL_CLOSE = 1000
#: hypercorn's ``--graceful-timeout`` (whole seconds): how long it waits before it
#: cancels the connections (3 s by default; shorter here to keep the tests quick).
GRACEFUL_TIMEOUT = 1
#: The group the group consumers join.
GROUP = "shutdown-room"
#: What each test sends before the SIGTERM; every consumer sends it back.
PAYLOAD = {"before": "sigterm"}

THIS_MODULE = __name__


# -- the server side ------------------------------------------------------------------


class AsyncEcho(AsyncWebsocketConsumer):
    """Send each text frame back."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class JsonEcho(AsyncJsonWebsocketConsumer):
    """Send each JSON message back."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json(content)


class SyncEcho(WebsocketConsumer):
    """Send each text frame back, from the handler's worker thread."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=text_data)


class AsyncGroupEcho(AsyncWebsocketConsumer):
    """Echo through the group: the frame comes back only if the channel is a member."""

    groups = (GROUP,)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send(GROUP, {"type": "room.message", "text": text_data})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class SyncGroupEcho(WebsocketConsumer):
    """``AsyncGroupEcho`` with sync handlers, as a migrated Channels project has them."""

    groups = (GROUP,)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        message = {"type": "room.message", "text": text_data}
        async_to_sync(self.channel_layer.group_send)(GROUP, message)

    def room_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])


async def function_echo(ws: WebSocket) -> None:
    """The native consumer: send each text frame back."""
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


def _configure_django(*, layer: bool) -> None:
    """Configure Django's settings with the in-memory layer as ``default``, or no layer."""
    from django.conf import settings

    memory = {"default": {"BACKEND": "achannels.layers.InMemoryChannelLayer"}}
    settings.configure(CHANNEL_LAYERS=memory if layer else {})


def build_app(*, layer: bool) -> ASGIApp:
    """Return the Channels-style app: class consumers (and a ``Router``) under a URLRouter.

    The group consumers are routed only with the layer, which they need.
    """
    from django.urls import path

    _configure_django(layer=layer)
    router = Router()
    router.websocket("/")(function_echo)
    routes = [
        path("ws/async/", AsyncEcho.as_asgi()),
        path("ws/json/", JsonEcho.as_asgi()),
        path("ws/sync/", SyncEcho.as_asgi()),
        path("ws/function/", router),
    ]
    if layer:
        routes += [
            path("ws/async-group/", AsyncGroupEcho.as_asgi()),
            path("ws/sync-group/", SyncGroupEcho.as_asgi()),
        ]
    return ProtocolTypeRouter({"websocket": URLRouter(routes)})


def build_consumer_app(*, layer: bool) -> ASGIApp:
    """Return a class consumer as the whole app, with no router around it."""
    _configure_django(layer=layer)
    return AsyncEcho.as_asgi()


# -- the client side ------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """An app for hypercorn and the WebSocket path of the consumer under test."""

    app: str
    path: str


def _app(factory: str, *, layer: bool) -> str:
    return f"{THIS_MODULE}:{factory}(layer={layer})"


CASES = [
    pytest.param(Case(_app("build_app", layer=True), "/ws/async/"), id="async-memory-layer"),
    pytest.param(Case(_app("build_app", layer=True), "/ws/sync/"), id="sync-memory-layer"),
    pytest.param(Case(_app("build_app", layer=True), "/ws/async-group/"), id="async-in-group"),
    pytest.param(
        Case(_app("build_consumer_app", layer=True), "/ws/"), id="consumer-as-app-memory-layer"
    ),
    # For comparison: the native function consumer, mounted under URLRouter.
    pytest.param(Case(_app("build_app", layer=True), "/ws/function/"), id="function-memory-layer"),
]


@pytest.fixture(params=HYPERCORN)
def kind(request: pytest.FixtureRequest) -> str:
    """Plain hypercorn with the trio and the asyncio worker."""
    worker: str = request.param
    return worker


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> Case:
    """The app served and the consumer the client talks to."""
    chosen: Case = request.param
    return chosen


@pytest.fixture
def plain_hypercorn(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, case: Case
) -> Iterator[Server]:
    """``case.app`` under plain hypercorn of its own, stopped whatever happens."""
    options = ["--graceful-timeout", str(GRACEFUL_TIMEOUT)]
    server = start_server(kind, case.app, output_dir=tmp_path, options=options)
    try:
        yield use_server(request, server)
    finally:
        server.stop()


async def end_of(ws: AsyncWebSocketSession) -> int | None:
    """Wait (bounded) for the socket to end; return the close code, ``None`` if none came.

    ``None`` means the connection dropped without a close frame. Fails the test if
    a data frame arrives first.
    """
    with anyio.fail_after(GRACEFUL_TIMEOUT + WAIT):
        try:
            message = await ws.receive()
        except WebSocketDisconnect as closed:
            return closed.code
        except WebSocketNetworkError:
            return None
    pytest.fail(f"a frame arrived after SIGTERM instead of the close: {message!r}")


async def wait_for_exit(server: Server) -> int:
    """Wait (in a thread, bounded) for the server to exit; return its status."""
    within = GRACEFUL_TIMEOUT + WAIT
    try:
        return await anyio.to_thread.run_sync(server.wait, within, abandon_on_cancel=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server was still running {within} s after SIGTERM")


async def test_sigterm_closes_with_a_normal_close(plain_hypercorn: Server, case: Case) -> None:
    server = plain_hypercorn
    async with open_client(server) as client, open_ws(client, case.path) as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text(json.dumps(PAYLOAD))
            assert json.loads(await ws.receive_text()) == PAYLOAD
        server.process.send_signal(signal.SIGTERM)
        code = await end_of(ws)
    assert code == NORMAL_CLOSE, "no close frame" if code is None else f"closed with {code}"
    assert await wait_for_exit(server) == 0
