"""The benchmark chat on Channels 4.3 and channels_redis (the Channels tutorial's consumer).

    BENCH_REDIS_PREFIX=p hypercorn --worker-class asyncio benchmarks.redis_apps.chat_channels:app

Same protocol as ``chat_achannels.py``: an ``AsyncWebsocketConsumer`` joins
``chat_<room>`` on connect and relays ``{"message": text}`` to the group, routed by
``ProtocolTypeRouter`` and ``URLRouter``. Minimal Django settings are configured
here; lifespan is answered by a small wrapper (Channels has no lifespan support).
"""

from __future__ import annotations

import json
import os
from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")],
                    "prefix": os.environ.get("BENCH_REDIS_PREFIX", "asgi"),
                },
            }
        },
    )
    django.setup()

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


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/chat/<slug:room>/", ChatConsumer.as_asgi())])}
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``application``, with lifespan answered so hypercorn starts without a warning."""
    if scope["type"] != "lifespan":
        await application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
