"""Channels-compatible base consumers: ``AsyncConsumer`` and ``SyncConsumer``.

``from channels.consumer import AsyncConsumer`` becomes
``from achannels.consumer import AsyncConsumer``. Messages are dispatched one at a
time to the method named after their ``type`` (dots become underscores), as in
Channels, but on achannels' per-connection runtime: the consumer runs in a task
group of its own, a client that leaves is noticed even while a handler is busy,
and the disconnect handler (group cleanup, ``disconnect()``) runs whatever ended
the connection.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio.from_thread

from ._asgi import ASGIApp, Message, Receive, Scope, Send
from ._connection import Connection, Connections, ConnectionSettings, run_connection
from ._consumer_runtime import ConsumerDriver, may_skip
from ._http import Request
from ._websocket import WebSocket
from .db import database_sync_to_async
from .layers import DEFAULT_CHANNEL_LAYER, ChannelLayer, get_channel_layer

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]


@functools.lru_cache(maxsize=64)
def _settings(watch_after: float, max_buffered: int, cleanup_timeout: float) -> ConnectionSettings:
    """One frozen settings object per distinct tuning, shared by the connections."""
    return ConnectionSettings(
        watch_after=watch_after, max_buffered=max_buffered, cleanup_timeout=cleanup_timeout
    )


def get_handler_name(message: Message) -> str:
    """Return the handler method name for ``message``: its ``type`` with ``.`` → ``_``.

    Raises:
        ValueError: the message has no ``type``, or the name would start with ``_``.
    """
    if "type" not in message:
        raise ValueError("Incoming message has no 'type' attribute")
    handler_name: str = message["type"].replace(".", "_")
    if handler_name.startswith("_"):
        raise ValueError("Malformed type in message (leading underscore)")
    return handler_name


class AsyncConsumer:
    """Base class of consumers: dispatch each message to ``<type>`` handler methods.

    Class attributes tune the runtime (defaults as for ``Router``):
    ``disconnect_check``, ``receive_buffer``, ``cleanup_timeout`` and
    ``max_message_size`` (the largest WebSocket frame accepted, characters or bytes;
    a larger one closes the socket with 1009).
    """

    _sync: ClassVar[bool] = False
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER
    disconnect_check: ClassVar[float] = 0.1
    receive_buffer: ClassVar[int] = 64
    cleanup_timeout: ClassVar[float] = 5.0
    max_message_size: int = WebSocket.max_message_size

    scope: Scope
    channel_layer: ChannelLayer | None
    channel_name: str | None
    base_send: Callable[[Message], Any]
    _connection: Connection

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection (ASGI 3)."""
        driver = await self._open(scope, receive, send, Connections())
        await run_connection(driver.connection, driver.serve())

    async def _open(
        self, scope: Scope, receive: Receive, send: Send, connections: Connections
    ) -> ConsumerDriver:
        """Set the consumer up for one connection; return the driver that serves it.

        The caller runs ``run_connection(driver.connection, driver.serve())`` itself: a
        method of ours awaiting it would keep one more frame alive per idle connection.
        The consumer keeps no reference to the driver (which holds its ``dispatch``),
        so the two form no reference cycle.
        """
        self.scope = scope
        if getattr(self, "channel_layer", None) is None:
            self.channel_layer = get_channel_layer(self.channel_layer_alias)
        connection = self._open_connection(scope, receive, send, connections)
        self._connection = connection
        self.channel_name = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            connection.adopt_channel(self.channel_name)
        self.base_send = self._sync_send if self._sync else connection.send_message
        return ConsumerDriver(connection, self.dispatch)

    def _open_connection(
        self, scope: Scope, receive: Receive, send: Send, connections: Connections
    ) -> Connection:
        """The connection object a function consumer would get for this scope."""
        settings = _settings(self.disconnect_check, self.receive_buffer, self.cleanup_timeout)
        kind = scope.get("type")
        common: dict[str, Any] = {
            "connections": connections,
            "settings": settings,
            "layer": self.channel_layer,
        }
        if kind == "websocket":
            return WebSocket(scope, receive, send, max_message_size=self.max_message_size, **common)
        if kind == "http":
            return Request(scope, receive, send, **common)
        return Connection(scope, receive, send, **common)

    @property
    def channel_receive(self) -> Callable[[], Awaitable[Message]] | None:
        """``await self.channel_receive()`` takes the next message on :attr:`channel_name`.

        As in Channels; ``None`` without a layer. Made when asked for: a connection
        then keeps no callable for it.
        """
        if self.channel_layer is None or self.channel_name is None:
            return None
        return functools.partial(self.channel_layer.receive, self.channel_name)

    def _sync_send(self, message: Message) -> None:
        anyio.from_thread.run(self._connection.send_message, message)

    async def dispatch(self, message: Message) -> None:
        """Call the handler method for ``message``'s type.

        A disconnect that follows the complete response (or the consumer's close)
        needs no handler: without one, the consumer ends quietly.

        Raises:
            ValueError: the consumer has no handler for this type.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if self._may_skip(message):
                return
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def _may_skip(self, message: Message) -> bool:
        # A disconnect after the response (or close) was sent needs no handler.
        connection: Connection | None = getattr(self, "_connection", None)
        return connection is not None and may_skip(connection, message)

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client."""
        await self.base_send(message)

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``func(*args)`` as a task owned by this connection (achannels addition).

        It is cancelled when the connection ends; if it raises, the connection fails
        (logged, closed with 1011).
        """
        self._connection.start_soon(func, *args)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """Return an ASGI app that serves each connection with ``cls(**initkwargs)``.

        The app also offers ``statistics()`` and ``aclose_connections(code=, grace=)``
        over the connections it serves.
        """
        connections = Connections()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            driver = await cls(**initkwargs)._open(scope, receive, send, connections)
            await run_connection(driver.connection, driver.serve())

        async def aclose_connections(*, code: int = 1001, grace: float = 5.0) -> None:
            await connections.close_all(code=code, grace=grace)

        app_any: Any = app
        app_any.consumer_class = cls
        app_any.consumer_initkwargs = initkwargs
        app_any.statistics = connections.statistics
        app_any.aclose_connections = aclose_connections
        functools.update_wrapper(app, cls, updated=())
        return app


class SyncConsumer(AsyncConsumer):
    """A consumer whose handlers are plain functions, run in a worker thread.

    ``self.send(...)`` is synchronous in the handlers. Django database connections
    are closed around each handler as with ``database_sync_to_async``.
    """

    _sync = True

    async def dispatch(self, message: Message) -> None:
        """Run the handler for ``message`` in a worker thread."""
        await database_sync_to_async(self._dispatch_sync)(message)

    def _dispatch_sync(self, message: Message) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if self._may_skip(message):
                return
            raise ValueError(f"No handler for message type {message['type']}")
        handler(message)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI message to the client (from the handler's thread)."""
        self.base_send(message)

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``func(*args)`` as a task owned by this connection, from a handler."""
        anyio.from_thread.run_sync(self._connection.start_soon, func, *args)
