"""The HTTP consumer compatible with Channels 4.3: ``AsyncHttpConsumer``.

``from channels.generic.http import AsyncHttpConsumer`` becomes
``from achannels.generic.http import AsyncHttpConsumer``. The request body is
gathered until its last chunk, then ``handle(body)`` composes the response with
``send_headers``, ``send_body`` and ``send_response``; ``disconnect()`` runs once the
exchange is over, whatever ended it (after an exception in ``handle()`` too, once
the 500 response was sent).

Beyond Channels: a response that ``handle()`` leaves open (headers sent, last body
chunk sent with ``more_body=True``) stays open after ``handle()`` returns, and layer
messages keep being dispatched to their handlers, which may stream more chunks.
That is how Channels documents long polling and server-sent events, but there the
consumer stops as soon as ``handle()`` returns. The consumer ends when a handler
sends the last chunk (``more_body=False``) or when the client leaves::

    class News(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.channel_layer.group_add("news", self.channel_name)
            await self.send_headers(headers=[(b"content-type", b"text/event-stream")])
            await self.send_body(b"", more_body=True)

        async def news_item(self, event: dict[str, Any]) -> None:
            await self.send_body(f"data: {event['text']}\\n\\n".encode(), more_body=True)

        async def disconnect(self) -> None:
            await self.channel_layer.group_discard("news", self.channel_name)

``send_body`` given something other than ``bytes`` raises ``TypeError`` (Channels
fails an ``assert``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer
from achannels.db import aclose_old_connections
from achannels.exceptions import StopConsumer

__all__ = ["AsyncHttpConsumer"]

HeadersArg = Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]] | None


class AsyncHttpConsumer(AsyncConsumer):
    """An HTTP endpoint: override ``handle(body)``, and ``disconnect()`` to clean up.

    Attributes:
        body: the request body chunks received so far.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.body: list[bytes] = []
        self._response_started = False
        self._response_complete = False
        self._left_open = False
        self._disconnect_ran = False

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client, noting where the response stands."""
        kind = message["type"]
        if kind == "http.response.start":
            self._response_started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self._response_complete = True
        await super().send(message)

    async def send_headers(self, *, status: int = 200, headers: HeadersArg = None) -> None:
        """Start the response with ``status`` and ``headers`` (pairs, or a mapping).

        The server sends them with the first body chunk, as ASGI says.
        """
        if headers is None:
            headers = []
        elif isinstance(headers, Mapping):
            headers = list(headers.items())
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a body chunk; ``more_body=True`` keeps the response open for more.

        Raises:
            TypeError: ``body`` is not ``bytes``.
        """
        if not isinstance(body, bytes):
            raise TypeError("Body is not bytes")
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(self, status: int, body: bytes, **kwargs: Any) -> None:
        """Send a whole response: ``send_headers(status=status, **kwargs)``, then ``body``."""
        await self.send_headers(status=status, **kwargs)
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        """Answer the request whose whole body is ``body``; subclasses must override it."""
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide a handle() method.")

    async def disconnect(self) -> None:
        """Called once when the exchange is over; do not send anything from here."""

    async def http_request(self, message: Message) -> None:
        """Gather the body; after its last chunk call ``handle()``.

        If ``handle()`` left the response open, keep dispatching (layer messages) until
        it is finished or the client leaves; otherwise run ``disconnect()`` and stop.
        """
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        await self.handle(b"".join(self.body))
        if self._response_started and not self._response_complete:
            self._left_open = True
            return
        await self._disconnect_once()
        raise StopConsumer()

    async def http_disconnect(self, message: Message) -> None:
        """The client left (or the exchange ended): run ``disconnect()`` and stop."""
        await self._disconnect_once()
        if "django.db" in sys.modules:
            await aclose_old_connections()
        raise StopConsumer()

    async def dispatch(self, message: Message) -> None:
        """Dispatch ``message``; stop once a response left open by ``handle()`` is finished."""
        await super().dispatch(message)
        if self._left_open and self._response_complete:
            raise StopConsumer()

    async def _disconnect_once(self) -> None:
        if not self._disconnect_ran:
            self._disconnect_ran = True
            await self.disconnect()
