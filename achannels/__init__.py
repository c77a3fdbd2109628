"""achannels: Django Channels rebuilt on structured concurrency (AnyIO: trio or asyncio).

Map of the package
==================

The native API (re-exported here) sits on private modules, one concept each. One
runtime serves both consumer styles:

* ``_asgi``: ASGI type aliases. ``_paths``: path patterns and converters (sans-IO).
  ``_wsstate``: the WebSocket state machine (sans-IO). ``_outcome``: the one table
  from the error that ended a consumer to what the client sees - close code and
  reason, HTTP status - and whether it is logged as a server error (sans-IO).
* ``_receiver``: the single reader of ASGI ``receive`` and the disconnect watcher.
* ``_layer_client``: a connection's view of the channel layer (channel, groups,
  ``@ws.on``), mixed into the connection.
* ``_connection``: the per-connection runtime: task group, owned tasks, how a
  connection ends (settle, shielded cleanups, then tell the client), statistics.
* ``_websocket``, ``_http``: the connection objects (``WebSocket``, ``Request``); both
  styles run on them. ``_responses``: HTTP responses.
* ``_consumer_runtime``: drives a Channels-style class consumer's ``dispatch`` from a
  connection object (the dispatch gate, the layer reader, the last disconnect).
* ``_channel_workers``: ``@router.channel`` workers fed by layer channels.
  ``_router``: ``Router``, the ASGI app of the native API.
* ``_serve``, ``__main__``: ``python -m achannels serve`` / ``worker`` (hypercorn).
* ``_gc``: ``tune_gc()``, the garbage collector's thresholds for a server holding many
  long-lived connections (applied at lifespan startup).

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

Imports go one way: sans-IO modules (``_paths``, ``_wsstate``, ``_outcome``,
``layers/_names``, ``layers/_redis_wire``) import no runtime module; ``layers``
imports only sans-IO modules and ``exceptions``; the runtime (``_receiver`` <
``_layer_client`` < ``_connection`` < ``_websocket``/``_http`` < ``_consumer_runtime``,
``_router``) may import ``layers``; the Channels faces import the runtime, never the
other way; nothing imports ``django/`` except Django itself (apps, management
commands). No module uses another's private names. Only ``anyio`` is imported for
concurrency, never ``asyncio`` or ``trio`` (``django/_asgiref`` asks sniffio which
library runs, and routes Django's async paths through AnyIO under trio).
"""

from __future__ import annotations

from ._connection import RuntimeStatistics
from ._gc import tune_gc
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
    "tune_gc",
]
