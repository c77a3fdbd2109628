"""Consumers with no disconnect handler, as Channels' docs write them, for a real server.

``test_disconnect_without_handler.py`` serves this module with hypercorn
(``tests.testing.server_app:app``): ``/async`` and ``/sync`` answer HTTP from consumers
that handle only ``http.request``; ``/ws/refuse`` is a consumer that closes the
handshake and has no ``websocket_disconnect``; ``/stats`` reports, as JSON, the
connections still live and the errors the consumers raised.
"""

from __future__ import annotations

import json
from typing import Any

from achannels._asgi import Message, Receive, Scope, Send
from achannels.consumer import AsyncConsumer, SyncConsumer

HELLO = [(b"content-type", b"text/plain")]


class AsyncHello(AsyncConsumer):
    """Answer ``hello``; the consumer of Channels' AsyncConsumer docs."""

    channel_layer = None

    async def http_request(self, message: Message) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": HELLO})
        await self.send({"type": "http.response.body", "body": b"hello"})


class SyncHello(SyncConsumer):
    """Answer ``hello`` from a worker thread."""

    channel_layer = None

    def http_request(self, message: Message) -> None:
        self.send({"type": "http.response.start", "status": 200, "headers": HELLO})
        self.send({"type": "http.response.body", "body": b"hello"})


class Refuse(AsyncConsumer):
    """Refuse every WebSocket handshake; no handler for the disconnect that follows."""

    channel_layer = None

    async def websocket_connect(self, message: Message) -> None:
        await self.send({"type": "websocket.close", "code": 4003})


CONSUMERS: dict[str, Any] = {
    "/async": AsyncHello.as_asgi(),
    "/sync": SyncHello.as_asgi(),
    "/ws/refuse": Refuse.as_asgi(),
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Route to the consumers; serve ``/stats`` and lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["path"] == "/stats":
        await _send_stats(send)
        return
    await CONSUMERS[scope["path"]](scope, receive, send)


async def _send_stats(send: Send) -> None:
    stats = [consumer.statistics() for consumer in CONSUMERS.values()]
    body = {
        "live": sum(s.connections_live for s in stats),
        "total": sum(s.connections_total for s in stats),
        "errors": sum(s.errors for s in stats),
    }
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
