"""WebSocket consumers compatible with Channels 4.3: frames in, frames out, groups.

``from channels.generic.websocket import X`` becomes
``from achannels.generic.websocket import X`` for ``WebsocketConsumer`` (sync handlers
in a worker thread), ``AsyncWebsocketConsumer`` and their JSON variants
``JsonWebsocketConsumer`` and ``AsyncJsonWebsocketConsumer``.

They behave as Channels' do - the ``groups`` attribute joined before ``connect()``
and left on disconnect, ``AcceptConnection``/``DenyConnection`` from ``connect()``,
``send(..., close=...)``, ``close(code, reason)``, an empty text frame reaching
``receive()`` as ``text_data=""`` - on achannels' runtime, which adds:

* ``websocket_disconnect`` (leaving the groups, then ``disconnect(code)``) runs
  whatever ended the connection: the client leaving, even while a handler is busy
  (the busy handler is cancelled), an exception (the socket closes with 1011), a
  cancellation or a server shutdown. ``disconnect()`` runs even if leaving a group
  failed; that error is then raised after it.
* The sync consumer calls the layer from its handler thread with
  ``anyio.from_thread.run`` (asyncio or trio), not asgiref's ``async_to_sync``.
  A sync handler cannot be interrupted in its thread: a client that leaves meanwhile
  is handled as soon as it returns.

Differences from Channels, on purpose: ``send()`` given both ``text_data`` and
``bytes_data`` raises ``ValueError`` (Channels sends the text and drops the bytes),
and a layer without the ``"groups"`` extension is refused with
``InvalidChannelLayerError`` before it is used. A client's bad input is the client's
error, as on the native path: a frame over ``max_message_size`` (1 MiB by default,
as ``Router``'s) raises ``MessageTooLarge`` and closes with 1009; a JSON consumer
given a binary frame raises ``InvalidMessage`` (1003), given malformed JSON or an
empty text frame ``InvalidMessage`` (1007). Left uncaught, each logs one warning line
and counts no server error (Channels raises ``ValueError``: 1011 and a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import anyio.from_thread

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer, SyncConsumer
from achannels.db import aclose_old_connections
from achannels.exceptions import (
    AcceptConnection,
    DenyConnection,
    InvalidChannelLayerError,
    InvalidMessage,
    StopConsumer,
)
from achannels.layers import ChannelLayer

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

#: The ``websocket.disconnect`` code when the server gave none (the ASGI default).
_NO_STATUS = 1005


def _group_layer(consumer: AsyncConsumer) -> tuple[ChannelLayer, str]:
    """Return the layer and channel that ``consumer.groups`` are managed with.

    Raises:
        InvalidChannelLayerError: no layer, or one without the ``"groups"`` extension.
    """
    layer = consumer.channel_layer
    channel = consumer.channel_name
    if layer is None or channel is None or "groups" not in getattr(layer, "extensions", ()):
        raise InvalidChannelLayerError("BACKEND is unconfigured or doesn't support groups")
    return layer, channel


def _accept_message(subprotocol: str | None, headers: Iterable[Any] | None) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _send_message(text_data: str | None, bytes_data: bytes | None) -> Message:
    if text_data is not None and bytes_data is not None:
        raise ValueError("You must pass only one of bytes_data or text_data")
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("You must pass one of bytes_data or text_data")


def _close_message(code: int | bool | None, reason: str | None) -> Message:
    message: Message = {"type": "websocket.close"}
    if code is not None and code is not True:  # close=True from send() means "no code"
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def _frame(message: Message) -> dict[str, Any]:
    """The ``receive()`` arguments for a ``websocket.receive`` message.

    The frame's size was checked against ``max_message_size`` by the connection.
    """
    text = message.get("text")
    return {"text_data": text} if text is not None else {"bytes_data": message["bytes"]}


def _json_text(text_data: str | None, bytes_data: bytes | None) -> str:
    """The text a JSON consumer decodes; a client's frame of the wrong kind is refused.

    Raises:
        InvalidMessage: the frame is binary (close code 1003) or empty (1007).
    """
    if text_data is None and bytes_data is not None:
        raise InvalidMessage("expected a text frame, got a binary one", close_code=1003)
    if not text_data:
        raise InvalidMessage("No text section for incoming WebSocket frame!")
    return text_data


async def _close_old_db_connections() -> None:
    # Channels closes stale Django database connections after a disconnect; skip the
    # thread hop when Django's database layer was never loaded.
    if "django.db" in sys.modules:
        await aclose_old_connections()


class WebsocketConsumer(SyncConsumer):
    """A WebSocket consumer whose handlers are plain functions run in a worker thread.

    Override ``connect()``, ``receive(text_data=None, bytes_data=None)`` and
    ``disconnect(code)``; call ``accept()``, ``send()`` and ``close()``. The channel
    joins every group in the ``groups`` class attribute before ``connect()`` runs.
    A frame over ``max_message_size`` (characters or bytes; class attribute or
    ``as_asgi()`` keyword) closes the socket with 1009.
    """

    groups: Iterable[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    def websocket_connect(self, message: Message) -> None:
        """Join ``groups``, then call ``connect()``.

        Raises:
            InvalidChannelLayerError: ``groups`` is not empty and there is no layer,
                or it does not support groups.
        """
        groups = list(self.groups or ())
        if groups:
            layer, channel = _group_layer(self)
            for group in groups:
                anyio.from_thread.run(layer.group_add, group, channel)
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        """Called when the client opens the WebSocket; accepts it by default."""
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Iterable[Any] | None = None) -> None:
        """Accept the WebSocket, optionally choosing a subprotocol and adding headers."""
        super().send(_accept_message(subprotocol, headers))

    def websocket_receive(self, message: Message) -> None:
        """Pass a frame's text (``None`` counts as absent) or else its bytes to ``receive()``."""
        self.receive(**_frame(message))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or a binary frame, then close if ``close`` (a code, or ``True``).

        Raises:
            ValueError: not exactly one of ``text_data`` and ``bytes_data`` was given.
        """
        super().send(_send_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the WebSocket (before accept: refuse it) with ``code`` and ``reason``."""
        super().send(_close_message(code, reason))

    def websocket_disconnect(self, message: Message) -> None:
        """Leave ``groups``, call ``disconnect(code)`` and stop the consumer."""
        try:
            groups = list(self.groups or ())
            if groups:
                layer, channel = _group_layer(self)
                for group in groups:
                    anyio.from_thread.run(layer.group_discard, group, channel)
        finally:
            self.disconnect(message.get("code", _NO_STATUS))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """Called when the WebSocket closed, whatever closed it; does nothing by default."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A ``WebsocketConsumer`` that decodes text frames from JSON and sends JSON.

    Override ``receive_json(content)``; call ``send_json(content)``. A binary frame
    raises ``InvalidMessage`` (the socket closes with 1003), an empty text frame or
    one ``decode_json()`` refuses with ``ValueError`` raises ``InvalidMessage`` (1007).
    """

    def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Decode a text frame and pass it to ``receive_json()``.

        Raises:
            InvalidMessage: the frame is binary (1003), empty or not JSON (1007).
        """
        text = _json_text(text_data, bytes_data)
        try:
            content = self.decode_json(text)
        except InvalidMessage:
            raise
        except ValueError as exc:  # a client's malformed JSON, not a server error
            raise InvalidMessage(f"malformed JSON in a text frame: {exc}") from exc
        self.receive_json(content, **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded frame; does nothing by default."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        """Send ``content`` encoded as JSON in a text frame, then close if ``close``."""
        super().send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        """Decode a text frame; override to customise."""
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        """Encode ``content`` for a text frame; override to customise."""
        return json.dumps(content)


class AsyncWebsocketConsumer(AsyncConsumer):
    """The async ``WebsocketConsumer``: the same methods, as coroutines."""

    groups: Iterable[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    async def websocket_connect(self, message: Message) -> None:
        """Join ``groups``, then call ``connect()``.

        Raises:
            InvalidChannelLayerError: ``groups`` is not empty and there is no layer,
                or it does not support groups.
        """
        groups = list(self.groups or ())
        if groups:
            layer, channel = _group_layer(self)
            for group in groups:
                await layer.group_add(group, channel)
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        """Called when the client opens the WebSocket; accepts it by default."""
        await self.accept()

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[Any] | None = None
    ) -> None:
        """Accept the WebSocket, optionally choosing a subprotocol and adding headers."""
        await super().send(_accept_message(subprotocol, headers))

    async def websocket_receive(self, message: Message) -> None:
        """Pass a frame's text (``None`` counts as absent) or else its bytes to ``receive()``."""
        await self.receive(**_frame(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client; does nothing by default."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or a binary frame, then close if ``close`` (a code, or ``True``).

        Raises:
            ValueError: not exactly one of ``text_data`` and ``bytes_data`` was given.
        """
        await super().send(_send_message(text_data, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the WebSocket (before accept: refuse it) with ``code`` and ``reason``."""
        await super().send(_close_message(code, reason))

    async def websocket_disconnect(self, message: Message) -> None:
        """Leave ``groups``, call ``disconnect(code)`` and stop the consumer."""
        try:
            groups = list(self.groups or ())
            if groups:
                layer, channel = _group_layer(self)
                for group in groups:
                    await layer.group_discard(group, channel)
        finally:
            await self.disconnect(message.get("code", _NO_STATUS))
        await _close_old_db_connections()
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Called when the WebSocket closed, whatever closed it; does nothing by default."""


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """The async ``JsonWebsocketConsumer``; ``encode_json``/``decode_json`` are coroutines."""

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Decode a text frame and pass it to ``receive_json()``.

        Raises:
            InvalidMessage: the frame is binary (1003), empty or not JSON (1007).
        """
        text = _json_text(text_data, bytes_data)
        try:
            content = await self.decode_json(text)
        except InvalidMessage:
            raise
        except ValueError as exc:  # a client's malformed JSON, not a server error
            raise InvalidMessage(f"malformed JSON in a text frame: {exc}") from exc
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded frame; does nothing by default."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        """Send ``content`` encoded as JSON in a text frame, then close if ``close``."""
        await super().send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        """Decode a text frame; override to customise."""
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Encode ``content`` for a text frame; override to customise."""
        return json.dumps(content)
