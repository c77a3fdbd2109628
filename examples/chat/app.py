"""A room-based chat: the Channels tutorial, done the achannels way.

One app serves the pages and the WebSocket; the channel layer relays messages
between everyone in a room. Run it in one process, on the in-memory layer::

    python -m achannels serve examples.chat.app:app -k trio
    # then open http://127.0.0.1:8000/ in two browser tabs

The environment picks the layer. With ``ACHANNELS_REDIS_URL`` set, it is Redis
(keys under ``ACHANNELS_REDIS_PREFIX``, default ``asgi``), so any number of server
processes share the rooms; each chat message is then also sent to the ``chat-log``
worker, which counts each room's messages and tells the room every
``ANNOUNCE_EVERY``. ``ACHANNELS_RUN_WORKERS=0`` leaves that worker to its own
process (``docs/deployment.md`` has the whole story)::

    export ACHANNELS_REDIS_URL=redis://127.0.0.1:6379 ACHANNELS_RUN_WORKERS=0
    hypercorn -k trio -w 2 -b 127.0.0.1:8000 examples.chat.app:app
    python -m achannels worker examples.chat.app:app -k trio
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from achannels import HTMLResponse, JSONResponse, Request, Router, WebSocket
from achannels.exceptions import ChannelFull
from achannels.layers import ChannelLayer, InMemoryChannelLayer

PAGES = Path(__file__).parent / "static"
INDEX = (PAGES / "index.html").read_text(encoding="utf-8")
ROOM = (PAGES / "room.html").read_text(encoding="utf-8")
MAX_MESSAGE = 2000
MAX_GROUP_NAME = 99  # the layer's limit on group names
REDIS_URL = os.environ.get("ACHANNELS_REDIS_URL")  # unset: one process, the memory layer
#: What a member whose message is empty, too long or not text is told.
BAD_MESSAGE = f"Not sent: a message is text of 1 to {MAX_MESSAGE} characters."
LOG_CHANNEL = "chat-log"
ANNOUNCE_EVERY = 10

logger = logging.getLogger("examples.chat")


def make_layer() -> ChannelLayer:
    """Return the Redis layer when ``ACHANNELS_REDIS_URL`` is set, else the memory layer."""
    if not REDIS_URL:
        return InMemoryChannelLayer(capacity=100)
    from achannels.layers.redis import RedisChannelLayer

    prefix = os.environ.get("ACHANNELS_REDIS_PREFIX", "asgi")
    return RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix, capacity=100)


layer = make_layer()
app = Router(
    layer=layer,
    max_message_size=16 * 1024,
    run_workers=os.environ.get("ACHANNELS_RUN_WORKERS", "1") != "0",
)


def room_group(room: str) -> str:
    """Return the layer group of ``room``'s members."""
    return f"chat_{room}"


@app.http("/")
async def index(request: Request) -> HTMLResponse:
    """The lobby: pick a room."""
    return HTMLResponse(INDEX)


@app.http("/chat/{room:slug}/")
async def room_page(request: Request, room: str) -> HTMLResponse:
    """The room page; its script opens the WebSocket below."""
    return HTMLResponse(ROOM)


@app.websocket("/ws/chat/{room:slug}/")
async def chat(ws: WebSocket, room: str) -> None:
    """Relay every message a member sends to everyone in the room."""
    group = room_group(room)
    if len(group) > MAX_GROUP_NAME:
        await ws.deny(400, body=b"room name too long")
        return
    # Join before accepting: once the page shows "connected", no message is missed.
    await ws.group_add(group)  # left automatically when the socket ends

    @ws.on("chat.message")
    async def relay(event: dict[str, Any]) -> None:
        await ws.send_json({"message": event["message"]})

    await ws.accept()

    async for data in ws.iter_json():
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, str) or not 0 < len(message) <= MAX_MESSAGE:
            await ws.send_json({"error": BAD_MESSAGE})
            continue
        await ws.group_send(group, {"type": "chat.message", "message": message})
        if REDIS_URL:
            await log_message(ws, room)


@app.http("/stats")
async def stats(request: Request) -> JSONResponse:
    """Live counters of the runtime and the layer (connections, tasks, drops)."""
    runtime, channels = app.statistics(), layer.statistics()
    return JSONResponse({"runtime": vars_of(runtime), "layer": vars_of(channels)})


def vars_of(snapshot: Any) -> dict[str, int]:
    """Return a statistics dataclass as a dict."""
    return {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}


# -- across processes: the chat-log worker (Redis only) ------------------------------


async def log_message(ws: WebSocket, room: str) -> None:
    """Tell the ``chat-log`` worker about a message; a worker far behind misses it."""
    try:
        await ws.channel_send(LOG_CHANNEL, {"type": "chat.logged", "room": room})
    except ChannelFull:
        logger.warning("the %s worker is behind: a message in %r goes uncounted", LOG_CHANNEL, room)


messages_per_room: Counter[str] = Counter()  # in the process that serves the worker


async def count_messages(event: dict[str, Any]) -> None:
    """Count each room's messages; every ``ANNOUNCE_EVERY``, tell the room."""
    room = event["room"]
    messages_per_room[room] += 1
    count = messages_per_room[room]
    if count % ANNOUNCE_EVERY == 0:
        text = f"[{LOG_CHANNEL}] {count} messages in this room"
        await layer.group_send(room_group(room), {"type": "chat.message", "message": text})


if REDIS_URL:  # the memory layer has one process: no worker there, as before
    app.channel(LOG_CHANNEL)(count_messages)
