"""Helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from achannels import Router, WebSocket
from achannels._asgi import ASGIApp
from achannels.layers import InMemoryChannelLayer


async def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until ``condition()`` is true, checking every 5 ms; fail after ``within`` s.

    For internal state that offers no event to wait on (a watcher's progress, a
    counter in another task). Raises ``TimeoutError`` when the condition never holds.
    """
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - the state watched has no event of its own
            await anyio.sleep(0.005)


class RawConnection:
    """Drive an ASGI app by hand, as a server would (no test-tool conveniences).

    Unlike ``achannels.testing`` this leaves ``raise_app_errors`` unset, so the app
    behaves exactly as it does under a real server: consumer errors are logged and
    turned into close codes / 500s, not raised.
    """

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[dict[str, Any]](100)
        self._app_outbox, self._from_app = anyio.create_memory_object_stream[Any](100)
        self.finished = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self._app_inbox.receive()

    async def send(self, message: Any) -> None:
        await self._app_outbox.send(message)

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        finally:
            self.finished.set()
            self._app_outbox.close()
            self._app_inbox.close()

    def send_input(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the app; dropped, as a server drops it, once the app ended."""
        try:
            self._to_app.send_nowait(message)
        except anyio.BrokenResourceError:
            assert self.finished.is_set()

    async def output(self) -> Any:
        with anyio.fail_after(5):
            return await self._from_app.receive()

    def close(self) -> None:
        for stream in (self._to_app, self._from_app, self._app_inbox, self._app_outbox):
            stream.close()


def ws_scope(path: str = "/ws/", **extra: Any) -> dict[str, Any]:
    """A WebSocket scope as hypercorn builds it (with the denial extension)."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    scope.update(extra)
    return scope


def http_scope(path: str = "/", method: str = "GET", **extra: Any) -> dict[str, Any]:
    """An HTTP scope as hypercorn builds it."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    scope.update(extra)
    return scope


def chat_router(layer: InMemoryChannelLayer) -> Router:
    """A native chat: ``/chat/{room}/`` joins ``chat_{room}``; ``{"m": ...}`` goes to the room."""
    router = Router(layer=layer)

    @router.websocket("/chat/{room}/")
    async def chat(ws: WebSocket, room: str) -> None:
        await ws.accept()
        await ws.group_add(f"chat_{room}")

        @ws.on("chat.message")
        async def relay(event: dict[str, Any]) -> None:
            await ws.send_json({"message": event["message"]})

        async for data in ws.iter_json():
            await ws.group_send(f"chat_{room}", {"type": "chat.message", "message": data["m"]})

    return router


def chat_consumer_app(layer: InMemoryChannelLayer) -> ASGIApp:
    """The same chat as a consumer class, in the group ``room`` (imported here: Django)."""
    from achannels.generic.websocket import AsyncJsonWebsocketConsumer

    class Chat(AsyncJsonWebsocketConsumer):
        channel_layer = layer

        async def connect(self) -> None:
            assert self.channel_name is not None
            await layer.group_add("room", self.channel_name)
            await self.accept()

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await layer.group_send("room", {"type": "chat.message", "message": content["m"]})

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send_json({"message": event["message"]})

    return Chat.as_asgi()
