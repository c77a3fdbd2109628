"""The echo apps the benchmarks serve, each on any path.

- ``raw``: a hand-written ASGI 3 app, the baseline: accept, echo every
  ``websocket.receive`` until ``websocket.disconnect``.
- ``achannels``: the native function consumer (``Router`` + ``@router.websocket``).
- ``achannels_class``: the same ``AsyncWebsocketConsumer`` from
  ``achannels.generic.websocket``, routed by ``achannels.routing`` (needs Django).
- ``channels``: a Channels ``AsyncWebsocketConsumer`` (only when ``channels`` is
  installed; asyncio servers only). :data:`AVAILABLE` lists what can be served here.

The two class-consumer apps configure Django, each its own way, so they are built
only when first asked for (``benchmarks.apps.channels``): one server process serves
one of them.

Serve one with e.g. ``hypercorn --worker-class trio benchmarks.apps:raw``.
"""

from __future__ import annotations

from typing import Any

from achannels import Router, WebSocket

# ``achannels_class`` and ``channels`` are module attributes too, built on first access.
__all__ = ["AVAILABLE", "ECHO_PATH", "achannels", "raw"]

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


def _achannels_class_app() -> Any:
    try:
        import django
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            INSTALLED_APPS=["achannels"],
            CHANNEL_LAYERS={},
            SECRET_KEY="benchmark-only",
        )
        django.setup()
    from django.urls import path

    from achannels.generic.websocket import AsyncWebsocketConsumer
    from achannels.routing import ProtocolTypeRouter, URLRouter

    class Echo(AsyncWebsocketConsumer):
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    # As a migrated Channels project routes it; ProtocolTypeRouter answers lifespan.
    return ProtocolTypeRouter(
        {"websocket": URLRouter([path(ECHO_PATH.lstrip("/"), Echo.as_asgi())])}
    )


_LAZY = {"channels": _channels_app, "achannels_class": _achannels_class_app}
_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """Build ``channels`` / ``achannels_class`` on first access (``None`` if unavailable)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _built:
        _built[name] = _LAZY[name]()
    return _built[name]


def _installed(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in modules)


#: The app names importable from this module as servable ASGI apps.
AVAILABLE = (
    ["raw", "achannels"]
    + (["achannels_class"] if _installed("django") else [])
    + (["channels"] if _installed("django", "channels") else [])
)
