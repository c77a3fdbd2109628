"""An echo server: WebSocket text/bytes/JSON echo and an SSE clock.

Run it with either hypercorn worker::

    hypercorn --worker-class trio examples.echo.app:app
    hypercorn --worker-class asyncio examples.echo.app:app
    python -m achannels serve examples.echo.app:app --worker-class trio
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from achannels import (
    EventSourceResponse,
    JSONResponse,
    Request,
    Router,
    ServerSentEvent,
    WebSocket,
)

app = Router()


@app.websocket("/ws/echo/")
async def echo(ws: WebSocket) -> None:
    """Send every frame back as it came, text or binary."""
    await ws.accept()
    async for message in ws:
        if isinstance(message, str):
            await ws.send_text(message)
        else:
            await ws.send_bytes(message)


@app.websocket("/ws/json/")
async def json_echo(ws: WebSocket) -> None:
    """Answer each JSON message with ``{"echo": message}``."""
    await ws.accept()
    async for data in ws.iter_json():
        await ws.send_json({"echo": data})


@app.http("/health")
async def health(request: Request) -> JSONResponse:
    """Report that the server is up."""
    return JSONResponse({"ok": True})


@app.http("/events/{count:int}")
async def events(request: Request, count: int) -> EventSourceResponse:
    """Stream ``count`` numbered events, one every 10 ms (0 streams forever)."""

    async def tick() -> AsyncIterator[ServerSentEvent]:
        number = 0
        while count == 0 or number < count:
            number += 1
            yield ServerSentEvent({"n": number}, event="tick", id=str(number))
            await anyio.sleep(0.01)

    return EventSourceResponse(tick())
