"""A room-based chat: the Channels tutorial, done the achannels way.

One app serves the pages and the WebSocket; the in-memory layer relays messages
between everyone in a room. Run it::

    python -m achannels serve examples.chat.app:app -k trio
    # then open http://127.0.0.1:8000/ in two browser tabs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from achannels import HTMLResponse, JSONResponse, Request, Router, WebSocket
from achannels.layers import InMemoryChannelLayer

PAGES = Path(__file__).parent / "static"
INDEX = (PAGES / "index.html").read_text(encoding="utf-8")
ROOM = (PAGES / "room.html").read_text(encoding="utf-8")
MAX_MESSAGE = 2000
MAX_GROUP_NAME = 99  # the layer's limit on group names

layer = InMemoryChannelLayer(capacity=100)
app = Router(layer=layer, max_message_size=16 * 1024)


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
    group = f"chat_{room}"
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
            await ws.send_json({"error": f"send {{'message': text}}, 1 to {MAX_MESSAGE} chars"})
            continue
        await ws.group_send(group, {"type": "chat.message", "message": message})


@app.http("/stats")
async def stats(request: Request) -> JSONResponse:
    """Live counters of the runtime and the layer (connections, tasks, drops)."""
    runtime, channels = app.statistics(), layer.statistics()
    return JSONResponse({"runtime": vars_of(runtime), "layer": vars_of(channels)})


def vars_of(snapshot: Any) -> dict[str, int]:
    """Return a statistics dataclass as a dict."""
    return {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}
