"""achannels: Django Channels rebuilt on structured concurrency (AnyIO: trio or asyncio).

Map of the package
==================

The native API (re-exported here) sits on private modules, one concept each:

* ``_asgi``: ASGI type aliases. ``_paths``: path patterns and converters (sans-IO).
  ``_wsstate``: the WebSocket state machine (sans-IO).
* ``_connection``: the per-connection runtime (task group, owned tasks, shielded
  cleanup, error -> close code, statistics). ``_receiver``: the disconnect watcher.
* ``_websocket``, ``_http``, ``_responses``: the connection objects and responses.
* ``_layer_client``: a connection's view of the channel layer (groups, ``@ws.on``).
* ``_workers``: ``@router.channel`` workers. ``_router``: ``Router``, the ASGI app.
* ``_consumer_runtime``: Channels-style class consumers on the same runtime.
* ``_serve``, ``__main__``: ``python -m achannels serve`` / ``worker`` (hypercorn).

Channel layers live in ``layers/``: ``_base`` (the contract), ``_names`` (name rules),
``memory`` (+ ``_registry``, ``_reaper``), ``redis`` (``RedisChannelLayer``) with
``_redis_wire`` (channels_redis's format, sans-IO), ``_redis_client`` (the only module
that imports coredis) and ``_redis_pubsub`` (``RedisPubSubChannelLayer``); ``_open``
(creating and owning layers) and ``_manager`` (Django's ``CHANNEL_LAYERS``).

``DEFAULT_CHANNEL_LAYER`` (from ``layers``) is exported here too, as Channels
exports it from its package.

Channels-compatible faces, thin over the core: ``routing``, ``consumer``,
``generic/``, ``exceptions``, ``db``, ``sync``, ``auth``, ``sessions``,
``middleware``, ``security/``, ``worker``, ``testing/``, ``management/``. Only
``django/`` (and those faces that need it: auth, sessions, db, URLRouter) import
Django; ``import achannels`` works without it.

Imports go one way: sans-IO modules import nothing else of ours; ``layers`` imports
only sans-IO modules and ``exceptions``; the runtime (``_connection`` and up) may
import ``layers``; the Channels faces import the runtime; nothing imports ``django/``
except Django itself (apps, management commands). Only ``anyio`` is imported for
concurrency, never ``asyncio`` or ``trio`` (``django/_asgiref`` asks sniffio which
library runs, and routes Django's async paths through AnyIO under trio).
"""

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
from .layers import DEFAULT_CHANNEL_LAYER

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
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
