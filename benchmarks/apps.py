"""The echo apps the benchmarks serve, each on any path.

- ``raw``: a hand-written ASGI 3 app, the baseline: accept, echo every
  ``websocket.receive`` until ``websocket.disconnect``.
- ``achannels``: the native function consumer (``Router`` + ``@router.websocket``).
- ``channels``: a Channels ``AsyncWebsocketConsumer`` (only when ``channels`` is
  installed; asyncio servers only). :data:`AVAILABLE` lists what can be served here.

Serve one with e.g. ``hypercorn --worker-class trio benchmarks.apps:raw``.
"""

from __future__ import annotations

from typing import Any

from achannels import Router, WebSocket

__all__ = ["AVAILABLE", "ECHO_PATH", "achannels", "channels", "raw"]

#: The path the load client connects to (every app here echoes on it).
ECHO_PATH = "/echo"

Scope = dict[str, Any]


async def raw(scope: Scope, receive: Any, send: Any) -> None:
    """Echo WebSocket frames with nothing between the server and the loop."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})


achannels = Router()


@achannels.websocket(ECHO_PATH)
async def _echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        assert isinstance(message, str)
        await ws.send_text(message)


def _channels_app() -> Any:
    try:
        import django
        from django.conf import settings
    except ImportError:
        return None
    try:
        from channels.generic.websocket import AsyncWebsocketConsumer
        from channels.routing import URLRouter
    except ImportError:
        return None
    from django.urls import path

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            INSTALLED_APPS=["channels"],
            CHANNEL_LAYERS={},
            SECRET_KEY="benchmark-only",
        )
        django.setup()

    class Echo(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    # Routed as in a Channels project; lifespan answered here (Channels has none).
    router = URLRouter([path(ECHO_PATH.lstrip("/"), Echo.as_asgi())])

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await raw(scope, receive, send)
        else:
            await router(scope, receive, send)

    return app


#: A Channels ``AsyncWebsocketConsumer`` echo, or ``None`` without ``channels``.
channels = _channels_app()

#: The app names importable from this module as servable ASGI apps.
AVAILABLE = ["raw", "achannels"] + (["channels"] if channels is not None else [])
