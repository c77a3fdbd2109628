"""Client frames and layer events both make progress through a class consumer.

A layer event waits at most behind the message being handled, even when the server's
``receive()`` hands over queued frames without yielding (as hypercorn's asyncio
worker does), so a busy client cannot starve its consumer's own group messages.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
import pytest

from achannels._asgi import Message
from achannels._consumer_runtime import DispatchGate
from achannels.generic.websocket import AsyncWebsocketConsumer
from achannels.layers import InMemoryChannelLayer
from tests.helpers import wait_until, ws_scope

pytestmark = pytest.mark.anyio

FRAMES = 200


class QueuedClient:
    """An ASGI driver whose ``receive()`` returns queued frames without yielding."""

    def __init__(self) -> None:
        self.inbox: deque[Message] = deque()
        self.sent: list[Message] = []
        self._arrived = anyio.Event()

    def queue(self, message: Message) -> None:
        self.inbox.append(message)
        self._arrived.set()

    async def receive(self) -> Message:
        while not self.inbox:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        return self.inbox.popleft()

    async def send(self, message: Message) -> None:
        self.sent.append(message)  # deliberately not a checkpoint either


class Room(AsyncWebsocketConsumer):
    """Forward each client frame to the consumer's own group; count the echoes."""

    groups = ("room",)
    delivered: list[str]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send("room", {"type": "chat.message", "text": text_data})

    async def chat_message(self, event: dict[str, Any]) -> None:
        self.delivered.append(event["text"])


async def test_group_messages_keep_up_with_a_client_sending_back_to_back() -> None:
    layer = InMemoryChannelLayer(capacity=10)
    delivered: list[str] = []
    client = QueuedClient()
    client.queue({"type": "websocket.connect"})
    for i in range(FRAMES):
        client.queue({"type": "websocket.receive", "text": str(i)})
    app = Room.as_asgi(channel_layer=layer, delivered=delivered)

    async def serve() -> None:
        await app(ws_scope(), client.receive, client.send)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await wait_until(lambda: not client.inbox and len(delivered) + _dropped(layer) >= FRAMES)
        client.queue({"type": "websocket.disconnect", "code": 1000})
    assert client.sent[0]["type"] == "websocket.accept"
    assert _dropped(layer) == 0
    assert delivered == [str(i) for i in range(FRAMES)]


def _dropped(layer: InMemoryChannelLayer) -> int:
    return layer.statistics().dropped_full


async def test_a_waiter_is_handed_the_gate_before_the_releaser_can_retake_it() -> None:
    gate = DispatchGate()
    order: list[str] = []
    handled = anyio.Event()

    async def handle(message: Message) -> None:
        order.append(message["type"])
        if message["type"] == "first":
            await handled.wait()

    async def client_loop() -> None:
        # Straight back for the next frame, without yielding, as on hypercorn-asyncio.
        await gate.run(handle, {"type": "first"})
        await gate.run(handle, {"type": "second"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(client_loop)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(gate.run, handle, {"type": "layer"})
        await anyio.wait_all_tasks_blocked()
        handled.set()
    assert order == ["first", "layer", "second"]


async def test_a_waiter_cancelled_as_it_is_handed_the_gate_passes_it_on() -> None:
    gate = DispatchGate()
    order: list[str] = []
    handled = anyio.Event()
    cancelled_waiter = anyio.CancelScope()

    async def handle(message: Message) -> None:
        order.append(message["type"])
        if message["type"] == "first":
            await handled.wait()

    async def holder() -> None:
        await gate.run(handle, {"type": "first"})
        cancelled_waiter.cancel()  # after the hand-over, before the waiter resumes

    async def waiter() -> None:
        with cancelled_waiter:
            await gate.run(handle, {"type": "cancelled"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(gate.run, handle, {"type": "last"})
        await anyio.wait_all_tasks_blocked()
        handled.set()
    with anyio.fail_after(1):
        await gate.run(handle, {"type": "free"})
    # Whether the cancelled waiter still ran depends on the backend; the next one runs.
    assert order in (["first", "last", "free"], ["first", "cancelled", "last", "free"])
