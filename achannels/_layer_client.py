"""What a connection does with the channel layer: its channel, groups, events.

A connection gets a layer channel only when it first needs one (``group_add``,
``get_channel_name``), so connections that never touch the layer pay nothing. Layer
messages reach the consumer either through handlers registered with :meth:`on`,
run one at a time by a reader task the connection owns, or in-line through
:meth:`receive_event`. On a layer that can say when a message arrives (the memory
layer's ``call_on_message``) the reader task starts with the first message, so a
connection that sits in groups and gets nothing keeps no task parked. Group
memberships are removed when the connection ends, shielded and bounded, whatever
ended it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .exceptions import InvalidChannelLayerError

if TYPE_CHECKING:
    from .layers import ChannelLayer

__all__ = ["EventHandler", "LayerClient"]

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
E = TypeVar("E", bound=EventHandler)


class LayerClient:
    """The layer side of one connection (mixed into :class:`Connection`)."""

    _layer: ChannelLayer | None
    _channel_name: str | None = None
    _groups: list[str] | None = None
    _handlers: dict[str, EventHandler] | None = None
    _deliver: EventHandler | None = None
    _reader_scope: anyio.CancelScope | None = None
    _reading_stopped = False

    if TYPE_CHECKING:  # provided by Connection

        def _start_own(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None: ...

        @property
        def ending(self) -> bool: ...

    @property
    def channel_layer(self) -> ChannelLayer:
        """The router's channel layer.

        Raises:
            InvalidChannelLayerError: the router was created without ``layer=``.
        """
        if self._layer is None:
            raise InvalidChannelLayerError(
                "this connection has no channel layer: pass layer= to Router()"
            )
        return self._layer

    @property
    def channel_name(self) -> str | None:
        """This connection's layer channel, or ``None`` until it first needed one."""
        return self._channel_name

    async def get_channel_name(self) -> str:
        """Return this connection's layer channel, creating it on first call.

        Messages sent to it (directly or through a group) reach the handlers
        registered with :meth:`on`, or :meth:`receive_event`.
        """
        channel = self._channel_name
        if channel is None:
            channel = await self.channel_layer.new_channel()
            self.adopt_channel(channel)
            self._start_reader()
        return channel

    def adopt_channel(self, name: str) -> None:
        """Make ``name`` (from the layer's ``new_channel()``) this connection's channel.

        Its messages are released when the connection ends, after the cleanup callbacks
        ran and the groups were left. For a class consumer, which reads its channel
        itself.

        Raises:
            RuntimeError: the connection already has a channel.
        """
        if self._channel_name is not None:
            raise RuntimeError(f"this connection already has channel {self._channel_name!r}")
        self._channel_name = name

    async def group_add(self, group: str) -> None:
        """Join ``group``; the membership ends when the connection ends. A checkpoint."""
        channel = await self.get_channel_name()
        if self._groups is None:
            self._groups = []  # a list: most connections join one or two groups
        # Recorded first: a cancellation during the layer call (a real window on a
        # networked layer) must still leave a membership that cleanup removes.
        if group not in self._groups:
            self._groups.append(group)
        await self.channel_layer.group_add(group, channel)

    async def group_discard(self, group: str) -> None:
        """Leave ``group`` (nothing happens if this connection is not a member)."""
        if self._channel_name is None or not self._groups or group not in self._groups:
            return
        await self.channel_layer.group_discard(group, self._channel_name)
        if group in self._groups:  # unless a concurrent call removed it meanwhile
            self._groups.remove(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` (a dict with a ``"type"``) to every member of ``group``."""
        await self.channel_layer.group_send(group, message)

    async def channel_send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to one ``channel``; raises ``ChannelFull`` when it is full."""
        await self.channel_layer.send(channel, message)

    def on(self, message_type: str) -> Callable[[E], E]:
        """Register ``async def handler(message)`` for layer messages of ``message_type``.

        Handlers run one at a time, in arrival order, in a reader task the connection
        owns. A message whose type has no handler fails the connection (1011) with a
        ``LookupError`` naming the type: nothing is dropped silently.
        """
        if not isinstance(message_type, str) or not message_type:
            raise TypeError(f"message type must be a non-empty str, not {message_type!r}")

        def register(handler: E) -> E:
            if self._handlers is None:
                self._handlers = {}
            self._handlers[message_type] = handler
            self._start_reader()
            return handler

        return register

    async def receive_event(self) -> dict[str, Any]:
        """Wait for the next layer message sent to this connection, in-line.

        For consumers that do not register handlers. A checkpoint; cancelling it takes
        no message.

        Raises:
            RuntimeError: handlers are registered (the reader task receives instead).
        """
        if self._handlers:
            raise RuntimeError("receive_event() cannot be used with handlers registered by on()")
        return await self.channel_layer.receive(await self.get_channel_name())

    def read_channel(self, deliver: EventHandler) -> None:
        """Await ``deliver(message)`` for each message on this connection's channel.

        One message at a time, in arrival order, in a reader task the connection owns
        (an exception there fails the connection). The task starts with the first
        message where the layer can say when one arrives (the memory layer), else at
        once; it reads until the connection ends or :meth:`stop_reading` is called.
        For a class consumer, which reads its channel through its dispatch gate.

        Raises:
            RuntimeError: the connection has no channel yet, or already a reader.
        """
        if self._channel_name is None:
            raise RuntimeError("this connection has no layer channel to read")
        if self._deliver is not None:
            raise RuntimeError("this connection's channel already has a reader")
        self._deliver = deliver
        call_on_message = getattr(self._layer, "call_on_message", None)
        if call_on_message is None or not call_on_message(self._channel_name, self._wake_reader):
            self._wake_reader()

    def stop_reading(self) -> None:
        """Stop the reader of :meth:`read_channel`: cancel a ``deliver`` in progress.

        Nothing more is read from the channel (what is queued there is dropped, and
        counted, when the connection ends). Not a checkpoint.
        """
        self._reading_stopped = True
        if self._reader_scope is not None:
            self._reader_scope.cancel()

    # -- internals ----------------------------------------------------------------------

    def _forget_handlers(self) -> None:
        """Drop the handlers and the reader's callback once the connection has ended.

        Handlers usually close over the connection (``@ws.on`` inside the consumer),
        and the callback is a bound method: either is a reference cycle that would
        wait for the cyclic collector, once per connection, if kept.
        """
        self._handlers = None
        self._deliver = None
        self._reader_scope = None

    def _start_reader(self) -> None:
        if self._deliver is None and self._handlers and self._channel_name is not None:
            self.read_channel(self._handle_event)

    def _wake_reader(self) -> None:
        # Runs inside the send that brought the first message. A connection already
        # ending starts nothing: its queued messages are dropped, and counted, when its
        # channel is released.
        if not (self.ending or self._reading_stopped) and self._channel_name is not None:
            self._start_own(self._read_events, self.channel_layer, self._channel_name)

    async def _read_events(self, layer: ChannelLayer, channel: str) -> None:
        deliver = self._deliver
        assert deliver is not None
        receive_nowait: Callable[[str], dict[str, Any]] = getattr(
            layer, "receive_nowait", _never_ready
        )
        # Shielded: stopped through this scope only (stop_reading), never by cancelling
        # the connection, so the task always ends without an exception.
        with anyio.CancelScope(shield=True) as scope:
            self._reader_scope = scope
            if self._reading_stopped:  # between this task's start and its first step
                return
            while not scope.cancel_called:
                # Drain what is queued without a wait per message; wait only when empty.
                message: dict[str, Any] | None
                try:
                    message = receive_nowait(channel)
                except anyio.WouldBlock:
                    message = None
                if message is None:
                    # Wait outside the except block: inside it the WouldBlock, its
                    # traceback and receive_nowait's frame would live as long as the
                    # wait, and each delivery would push them into the oldest GC
                    # generation.
                    message = await layer.receive(channel)
                await deliver(message)

    async def _handle_event(self, message: dict[str, Any]) -> None:
        handlers = self._handlers
        assert handlers is not None
        handler = handlers.get(message["type"])
        if handler is None:
            raise LookupError(
                f"no handler for layer message type {message['type']!r} on this connection"
                f" (handlers: {sorted(handlers)})"
            )
        await handler(message)

    async def _leave_groups(self) -> None:
        if self._channel_name is None or not self._groups:
            return
        layer = self.channel_layer
        if not hasattr(layer, "discard_channel_nowait"):  # else releasing leaves them all
            for group in list(self._groups):
                await layer.group_discard(group, self._channel_name)
        self._groups.clear()

    async def _release_channel(self) -> None:
        # Layers that can drop what nobody will read now, count it and leave the
        # channel's groups (the memory layer without yielding); elsewhere the
        # channel's messages expire.
        channel, layer = self._channel_name, self._layer
        if channel is None:
            return
        if (discard_nowait := getattr(layer, "discard_channel_nowait", None)) is not None:
            discard_nowait(channel)
        elif (discard := getattr(layer, "discard_channel", None)) is not None:
            await discard(channel)


def _never_ready(channel: str) -> dict[str, Any]:
    raise anyio.WouldBlock
