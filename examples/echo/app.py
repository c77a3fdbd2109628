"""An echo server: WebSocket text/bytes/JSON echo, an SSE clock, and probes.

Run it with either hypercorn worker::

    hypercorn --worker-class trio examples.echo.app:app
    hypercorn --worker-class asyncio examples.echo.app:app
    python -m achannels serve examples.echo.app:app --worker-class trio

Besides the echoes it has consumers that misbehave on purpose (close with a chosen
code, fail, sleep forever) and HTTP views that show what the server saw
(``/stats``, ``/records/{key}``); the end-to-end tests in ``tests/e2e/`` drive them
with real clients against real servers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import anyio

from achannels import (
    EventSourceResponse,
    InvalidMessage,
    JSONResponse,
    Request,
    Response,
    Router,
    ServerSentEvent,
    WebSocket,
)

#: The largest WebSocket frame the app accepts; a larger one closes with 1009.
MAX_MESSAGE_SIZE = 64 * 1024

#: What ``/ws/command/`` answers to each command it knows.
COMMANDS = {"ping": "pong"}

#: The subprotocols ``/ws/subprotocols/`` speaks, most preferred first.
SUBPROTOCOLS = ("echo.v2", "echo.v1")

app = Router(max_message_size=MAX_MESSAGE_SIZE)

#: What probe consumers saw, by the key in their path: close codes, cancellations.
records: dict[str, dict[str, Any]] = {}
#: Server-sent event streams running right now.
live_streams = 0


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


@app.websocket("/ws/text/")
async def text_echo(ws: WebSocket) -> None:
    """Echo text frames; a binary frame closes the socket with 1003."""
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


@app.websocket("/ws/command/")
async def command(ws: WebSocket) -> None:
    """Answer known commands; an unknown one closes with 4400 and names it in the reason."""
    await ws.accept()
    async for text in ws.iter_text():
        if text not in COMMANDS:
            raise InvalidMessage(f"unknown command {text!r}", close_code=4400)
        await ws.send_text(COMMANDS[text])


@app.websocket("/ws/subprotocols/")
async def negotiate(ws: WebSocket) -> None:
    """Accept with the most preferred subprotocol the client offered, and a header.

    Then send the chosen subprotocol (``""`` for none) as the first message.
    """
    chosen = next((name for name in SUBPROTOCOLS if name in ws.subprotocols), None)
    await ws.accept(chosen, headers=[("x-echo-server", "achannels")])
    await ws.send_text(chosen or "")
    async for _ in ws:
        pass


@app.websocket("/ws/close/{code:int}/")
async def close_with(ws: WebSocket, code: int) -> None:
    """Accept, then close at once with ``code`` and a reason that names it."""
    await ws.accept()
    await ws.close(code, f"closed with {code}")


@app.websocket("/ws/fail/")
async def fail(ws: WebSocket) -> None:
    """Accept, then raise on the first message (the socket closes with 1011)."""
    await ws.accept()
    message = await ws.receive()
    raise RuntimeError(f"failing on purpose after {message!r}")


@app.websocket("/ws/fail-early/")
async def fail_early(ws: WebSocket) -> None:
    """Raise before accepting (the handshake is answered with HTTP 500)."""
    raise RuntimeError("failing on purpose before accept")


@app.websocket("/ws/record/{key}/")
async def record_close(ws: WebSocket, key: str) -> None:
    """Read until the client leaves, then record its close code and reason."""
    await ws.accept()
    await ws.send_text("ready")
    async for _ in ws:
        pass
    records[key] = {"code": ws.close_code, "reason": ws.close_reason}


@app.websocket("/ws/sleep/{key}/")
async def sleep_forever(ws: WebSocket, key: str) -> None:
    """Accept, then stay busy away from ``receive()``; record how that ended."""
    await ws.accept()
    records[key] = {"cancelled": False, "finished": False}
    await ws.send_text("sleeping")
    try:
        await anyio.sleep(3600)
    except anyio.get_cancelled_exc_class():
        records[key]["cancelled"] = True
        raise
    finally:
        records[key]["finished"] = True


@app.http("/health")
async def health(request: Request) -> JSONResponse:
    """Report that the server is up."""
    return JSONResponse({"ok": True})


@app.http("/echo", methods=["POST"])
async def echo_json(request: Request) -> JSONResponse:
    """Answer a JSON body with ``{"echo": body}``."""
    return JSONResponse({"echo": await request.json()})


@app.http("/fail")
async def fail_http(request: Request) -> Response:
    """Raise before responding (the client gets a 500)."""
    raise RuntimeError("failing on purpose")


@app.http("/stats")
async def stats(request: Request) -> JSONResponse:
    """Report the router's statistics (this request counts as a live connection)."""
    counts = dataclasses.asdict(app.statistics())
    return JSONResponse({**counts, "live_streams": live_streams})


@app.http("/records/{key}")
async def record(request: Request, key: str) -> JSONResponse:
    """Return what the probe consumer with ``key`` recorded (404 before it did)."""
    if key not in records:
        return JSONResponse({"detail": f"nothing recorded for {key!r}"}, 404)
    return JSONResponse(records[key])


@app.http("/events/{count:int}")
async def events(request: Request, count: int) -> EventSourceResponse:
    """Stream ``count`` numbered events, one every 10 ms (0 streams forever)."""

    async def tick() -> AsyncIterator[ServerSentEvent]:
        global live_streams
        live_streams += 1
        try:
            number = 0
            while count == 0 or number < count:
                number += 1
                yield ServerSentEvent({"n": number}, event="tick", id=str(number))
                await anyio.sleep(0.01)
        finally:
            live_streams -= 1

    return EventSourceResponse(tick())
