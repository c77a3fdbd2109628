"""The disconnect after a complete exchange needs no handler (Channels' docs pattern).

An ``AsyncConsumer`` that handles only ``http.request`` gets an ``http.disconnect``
after its response, from ``HttpCommunicator.get_response()`` and from real servers.
It must end quietly there, and so must a consumer that refused a WebSocket handshake
and has no ``websocket_disconnect``. A client that leaves mid-exchange still fails a
consumer with no handler for it, as in Channels.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx_ws
import pytest

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer
from achannels.testing import HttpCommunicator, WebsocketCommunicator
from tests.e2e.clients import open_client, open_ws, poll_json
from tests.e2e.servers import HYPERCORN, Server, start_server, use_server

from .server_app import AsyncHello, Refuse, SyncHello

HELLO_RESPONSE = {"status": 200, "headers": [(b"content-type", b"text/plain")], "body": b"hello"}


# -- under the communicators -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("consumer", [AsyncHello, SyncHello], ids=["async", "sync"])
async def test_get_response_from_a_consumer_with_only_http_request(
    consumer: type[AsyncConsumer],
) -> None:
    communicator = HttpCommunicator(consumer.as_asgi(), "GET", "/test/")
    assert await communicator.get_response() == HELLO_RESPONSE

    async with HttpCommunicator(consumer.as_asgi(), "GET", "/test/") as communicator:
        assert await communicator.get_response() == HELLO_RESPONSE


@pytest.mark.anyio
async def test_a_refused_handshake_without_a_disconnect_handler() -> None:
    communicator = WebsocketCommunicator(Refuse.as_asgi(), "/ws/")
    assert await communicator.connect() == (False, 4003)


@pytest.mark.anyio
async def test_a_disconnect_mid_exchange_without_a_handler_still_fails() -> None:
    class Accept(AsyncConsumer):
        channel_layer = None

        async def websocket_connect(self, message: Message) -> None:
            await self.send({"type": "websocket.accept"})

    communicator = WebsocketCommunicator(Accept.as_asgi(), "/ws/")
    assert await communicator.connect() == (True, None)
    with pytest.raises(ValueError, match=r"^No handler for message type websocket\.disconnect$"):
        await communicator.disconnect()


# -- under hypercorn ---------------------------------------------------------------------

APP = "tests.testing.server_app:app"


@pytest.fixture(scope="module", params=HYPERCORN)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``server_app`` under hypercorn, with the trio and the asyncio worker."""
    server = start_server(request.param, APP, output_dir=tmp_path_factory.mktemp("servers"))
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.anyio
@pytest.mark.e2e
async def test_consumers_without_disconnect_handlers_under_hypercorn(
    request: pytest.FixtureRequest, served: Server
) -> None:
    server = use_server(request, served)
    async with open_client(server) as client:
        before = (await client.get("/stats")).json()
        for path in ["/async", "/sync"] * 3:
            response = await client.get(path)
            assert (response.status_code, response.text) == (200, "hello")
        with pytest.raises(httpx_ws.WebSocketUpgradeError):
            async with open_ws(client, "/ws/refuse"):
                pass
        # Each consumer saw its disconnect (after the response, or after its close)
        # and ended without an error.
        stats = await poll_json(client, "/stats", lambda r: r.json()["live"] == 0)
    assert stats["total"] == before["total"] + 7
    assert stats["errors"] == before["errors"] == 0
    assert "No handler" not in server.read_output()
