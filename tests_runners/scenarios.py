"""Channels-style tests of the communicators, shared by the runner directories.

Each scenario is a plain coroutine function written the way Channels projects write
their tests: call-style communicators, ended in any order, inside timeouts and cancel
scopes, or not ended at all. The runner directories turn them into tests of their
runner; their ``conftest.py`` checks after each test (when the communicator host the
achannels pytest plugin opened has closed) that no connection is left live.
"""

from __future__ import annotations

import anyio

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer
from achannels.generic.websocket import AsyncJsonWebsocketConsumer
from achannels.testing import HttpCommunicator, WebsocketCommunicator

__all__ = [
    "Echo",
    "Hello",
    "assert_nothing_left",
    "async_with_form",
    "connect_in_a_scope_later_cancelled",
    "disconnect_inside_timeouts",
    "get_response_without_a_disconnect_handler",
    "left_connected",
    "reset",
    "two_clients_end_in_any_order",
]


class Echo(AsyncJsonWebsocketConsumer):
    """Echo JSON; count the connections whose ``disconnect()`` has not run yet."""

    channel_layer = None
    live = 0

    async def connect(self) -> None:
        type(self).live += 1
        await self.accept()

    async def receive_json(self, content: object, **kwargs: object) -> None:
        await self.send_json(content)

    async def disconnect(self, code: int) -> None:
        type(self).live -= 1


class Hello(AsyncConsumer):
    """Handle only ``http.request``, as in Channels' docs."""

    channel_layer = None

    async def http_request(self, message: Message) -> None:
        await self.send({"type": "http.response.start", "status": 200, "headers": []})
        await self.send({"type": "http.response.body", "body": b"hello"})


def reset() -> None:
    """Forget the connections of an earlier test."""
    Echo.live = 0


def assert_nothing_left() -> None:
    """Fail if a consumer is still connected (its application was not ended)."""
    assert Echo.live == 0, f"{Echo.live} consumer(s) still connected after the test"


async def _echo(communicator: WebsocketCommunicator, content: object) -> None:
    await communicator.send_json_to(content)
    assert await communicator.receive_json_from() == content


async def two_clients_end_in_any_order() -> None:
    alice = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    bob = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    connected, _ = await alice.connect()
    assert connected
    connected, _ = await bob.connect()
    assert connected
    await _echo(alice, {"from": "alice"})
    await alice.disconnect()  # the first one started ends first
    await _echo(bob, {"from": "bob"})
    await bob.disconnect()


async def disconnect_inside_timeouts() -> None:
    communicator = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    with anyio.fail_after(3):
        assert (await communicator.connect())[0]
    await _echo(communicator, [1, 2])
    with anyio.move_on_after(3):
        await communicator.disconnect()


async def connect_in_a_scope_later_cancelled() -> None:
    communicator = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    with anyio.CancelScope() as scope:
        assert (await communicator.connect())[0]
        scope.cancel()
        await anyio.sleep_forever()
    await _echo(communicator, "after the scope")
    await communicator.disconnect()


async def left_connected() -> None:
    communicator = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    assert (await communicator.connect())[0]
    await _echo(communicator, "no disconnect")
    # No disconnect: the host cancels the consumer when the test ends.


async def get_response_without_a_disconnect_handler() -> None:
    communicator = HttpCommunicator(Hello.as_asgi(), "GET", "/hello/")
    response = await communicator.get_response()
    assert (response["status"], response["body"]) == (200, b"hello")


async def async_with_form() -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/ws/") as communicator:
        with anyio.fail_after(3):
            assert (await communicator.connect())[0]
        await _echo(communicator, None)
