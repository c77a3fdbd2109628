"""achannels: Django Channels rebuilt on structured concurrency (AnyIO: trio or asyncio)."""

from __future__ import annotations

from ._connection import RuntimeStatistics
from ._http import Headers, Request
from ._responses import (
    EventSourceResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    ServerSentEvent,
    StreamingResponse,
)
from ._router import Router
from ._websocket import WebSocket
from ._wsstate import WebSocketState
from .exceptions import (
    HTTPException,
    InvalidMessage,
    MessageTooLarge,
    WebSocketDisconnect,
    WebSocketStateError,
)

__all__ = [
    "EventSourceResponse",
    "HTMLResponse",
    "HTTPException",
    "Headers",
    "InvalidMessage",
    "JSONResponse",
    "MessageTooLarge",
    "PlainTextResponse",
    "Request",
    "Response",
    "Router",
    "RuntimeStatistics",
    "ServerSentEvent",
    "StreamingResponse",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "WebSocketStateError",
]
