"""The benchmark chat, native achannels on ``RedisChannelLayer`` (as ``examples/chat``).

    BENCH_REDIS_PREFIX=p hypercorn --worker-class trio benchmarks.redis_apps.chat_achannels:app

Every member of room ``R`` (``/ws/chat/R/``) is in group ``chat_R``; a JSON
``{"message": text}`` from one member is relayed to all of them. The router's
lifespan owns the layer (pools and receive loops), as in production.
"""

from __future__ import annotations

import os
from typing import Any

from achannels import Router, WebSocket
from achannels.layers.redis import RedisChannelLayer

layer = RedisChannelLayer(
    hosts=[os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")],
    prefix=os.environ.get("BENCH_REDIS_PREFIX", "asgi"),
)
app = Router(layer=layer)


@app.websocket("/ws/chat/{room:slug}/")
async def chat(ws: WebSocket, room: str) -> None:
    """Relay every message a member sends to everyone in the room."""
    group = f"chat_{room}"
    await ws.group_add(group)

    @ws.on("chat.message")
    async def relay(event: dict[str, Any]) -> None:
        await ws.send_json({"message": event["message"]})

    await ws.accept()
    async for data in ws.iter_json():
        await ws.group_send(group, {"type": "chat.message", "message": data["message"]})
