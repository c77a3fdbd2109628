"""achannels inside a plain Starlette app: no Django anywhere.

An achannels :class:`~achannels.Router` is an ASGI app, so it mounts like any other::

    hypercorn --worker-class trio examples.plain_asgi.app:app

serves Starlette's own routes at ``/`` and ``/modules`` and the router's WebSocket
echo and HTTP view under ``/rt`` (``/rt/ws/echo/``, ``/rt/hello/{name}``). Starlette
does not forward lifespan events to mounted apps, so the app's lifespan closes the
router's live connections on shutdown itself.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import PlainTextResponse as StarlettePlainTextResponse
from starlette.routing import Mount, Route

from achannels import JSONResponse, Request, Router, WebSocket

router = Router()


@router.websocket("/ws/echo/")
async def echo(ws: WebSocket) -> None:
    """Send every frame back as it came, text or binary."""
    await ws.accept()
    async for message in ws:
        if isinstance(message, str):
            await ws.send_text(message)
        else:
            await ws.send_bytes(message)


@router.http("/hello/{name}")
async def hello(request: Request, name: str) -> JSONResponse:
    """Greet ``name`` and show the path the request arrived on."""
    return JSONResponse({"hello": name, "path": request.path})


async def homepage(request: StarletteRequest) -> StarlettePlainTextResponse:
    """A route Starlette serves itself, beside the mounted router."""
    return StarlettePlainTextResponse("served by Starlette")


async def modules(request: StarletteRequest) -> StarletteJSONResponse:
    """Report whether Django was imported, or could be, in this process."""
    return StarletteJSONResponse(
        {
            "django_imported": "django" in sys.modules,
            "django_installed": importlib.util.find_spec("django") is not None,
        }
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Close the router's live connections (1001) when the server shuts down."""
    yield
    await router.aclose_connections()


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/modules", modules),
        Mount("/rt", app=router),
    ],
    lifespan=lifespan,
)
