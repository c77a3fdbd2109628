"""The chat apps the suite's fan-out, churn, idle-memory and 10k benchmarks serve.

Every app speaks one protocol: a WebSocket on ``/ws/chat/<room>/`` joins room
``<room>``; a text frame ``{"message": text}`` from a member is broadcast to every
member of the room (the sender included) as ``{"message": text}``.

- ``chat-raw``: a hand-written ASGI 3 app, the baseline: a dict of rooms, each a set of
  the members' ASGI ``send`` callables; a broadcast awaits each member's ``send`` in
  turn.
- ``chat-native``: the achannels native consumer (``Router`` + ``@router.websocket``,
  ``ws.group_add``/``ws.group_send``/``@ws.on``) on ``InMemoryChannelLayer``.
- ``chat-class``: the Channels tutorial's ``ChatConsumer(AsyncWebsocketConsumer)`` with
  the imports renamed ``channels`` -> ``achannels``, routed by
  ``achannels.routing.ProtocolTypeRouter``/``URLRouter``, with
  ``achannels.layers.InMemoryChannelLayer`` in ``CHANNEL_LAYERS``.
- ``chat-channels``: the same tutorial consumer on Channels 4.3 and its
  ``InMemoryChannelLayer`` (asyncio servers only; needs ``channels``).

An app is built only when asked for (:func:`build`), so that one process configures
Django for the one app it serves. Every app is wrapped by :func:`with_stats`: ``GET
/stats`` answers the server process's RSS and garbage-collector-tracked object count
(after a full collection), the benchmarks' window into the server. Lifespan is
answered by the wrapper for the apps without lifespan support of their own.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CHAT_APPS", "available", "build", "rss_kb", "with_stats"]

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]

#: The chat apps, in the order the tables list them.
CHAT_APPS = ("chat-raw", "chat-native", "chat-class", "chat-channels")


def rss_kb(pid: int | str = "self") -> int:
    """Return the resident set size of ``pid`` in KiB (Linux ``/proc``), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def with_stats(app: ASGIApp, *, answer_lifespan: bool) -> ASGIApp:
    """Wrap ``app``: serve ``GET /stats`` here, and answer lifespan if asked to."""

    async def wrapper(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/stats":
            gc.collect()
            body = json.dumps(
                {"pid": os.getpid(), "rss_kb": rss_kb(), "gc_objects": len(gc.get_objects())}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "lifespan" and answer_lifespan:
            await _lifespan(receive, send)
            return
        await app(scope, receive, send)

    return wrapper


def _room(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if len(parts) == 3 and parts[0] == "ws" and parts[1] == "chat" and parts[2]:
        return parts[2]
    return None


def _raw_app() -> ASGIApp:
    rooms: dict[str, set[Callable[..., Any]]] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        room = _room(scope["path"]) if scope["type"] == "websocket" else None
        if room is None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            return
        await receive()  # websocket.connect
        members = rooms.setdefault(room, set())
        members.add(send)
        try:
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                text = json.dumps({"message": json.loads(message["text"])["message"]})
                out = {"type": "websocket.send", "text": text}
                for member in list(members):
                    try:
                        await member(out)
                    except Exception:  # a member that left misses it
                        members.discard(member)
        finally:
            members.discard(send)
            if not members:
                rooms.pop(room, None)

    return app


def _native_app() -> ASGIApp:
    from achannels import Router, WebSocket
    from achannels.layers import InMemoryChannelLayer

    router = Router(layer=InMemoryChannelLayer())

    @router.websocket("/ws/chat/{room:slug}/")
    async def chat(ws: WebSocket, room: str) -> None:
        group = f"chat_{room}"
        await ws.group_add(group)

        @ws.on("chat.message")
        async def relay(event: dict[str, Any]) -> None:
            await ws.send_json({"message": event["message"]})

        await ws.accept()
        async for data in ws.iter_json():
            await ws.group_send(group, {"type": "chat.message", "message": data["message"]})

    return router


def _configure_django(installed_app: str, layer_backend: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        INSTALLED_APPS=[installed_app],
        CHANNEL_LAYERS={"default": {"BACKEND": layer_backend}},
    )
    django.setup()


def _class_app() -> ASGIApp:
    _configure_django("achannels", "achannels.layers.InMemoryChannelLayer")
    from django.urls import path

    from achannels.generic.websocket import AsyncWebsocketConsumer
    from achannels.routing import ProtocolTypeRouter, URLRouter

    class ChatConsumer(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room']}"
            await self.channel_layer.group_add(self.room_group_name, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            message = json.loads(text_data)["message"]
            await self.channel_layer.group_send(
                self.room_group_name, {"type": "chat.message", "message": message}
            )

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=json.dumps({"message": event["message"]}))

    return ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/chat/<slug:room>/", ChatConsumer.as_asgi())])}
    )


def _channels_app() -> ASGIApp:
    _configure_django("channels", "channels.layers.InMemoryChannelLayer")
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def connect(self) -> None:
            self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room']}"
            await self.channel_layer.group_add(self.room_group_name, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            message = json.loads(text_data)["message"]
            await self.channel_layer.group_send(
                self.room_group_name, {"type": "chat.message", "message": message}
            )

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=json.dumps({"message": event["message"]}))

    return ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/chat/<slug:room>/", ChatConsumer.as_asgi())])}
    )


_BUILDERS: dict[str, tuple[Callable[[], ASGIApp], bool]] = {
    # name -> (builder, whether the wrapper answers lifespan)
    "chat-raw": (_raw_app, True),
    "chat-native": (_native_app, False),  # the Router owns its layer over lifespan
    "chat-class": (_class_app, False),  # ProtocolTypeRouter owns CHANNEL_LAYERS
    "chat-channels": (_channels_app, True),  # Channels has no lifespan support
}


def available() -> list[str]:
    """Return the chat apps this environment can serve (Channels only if installed)."""
    import importlib.util

    names = list(CHAT_APPS)
    if importlib.util.find_spec("channels") is None or importlib.util.find_spec("django") is None:
        names.remove("chat-channels")
    if importlib.util.find_spec("django") is None:
        names.remove("chat-class")
    return names


def build(name: str) -> ASGIApp:
    """Build the chat app ``name`` (one of :data:`CHAT_APPS`), wrapped with ``/stats``."""
    try:
        builder, answer_lifespan = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown app {name!r}; choose from {', '.join(CHAT_APPS)}") from None
    return with_stats(builder(), answer_lifespan=answer_lifespan)
