"""AsyncWebsocketConsumer and WebsocketConsumer behave as Channels 4.3's do."""

from __future__ import annotations

from typing import Any

import anyio.from_thread
import pytest

from achannels.exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError
from achannels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from achannels.layers import BaseChannelLayer, InMemoryChannelLayer, LayerStatistics
from achannels.testing import WebsocketCommunicator

pytestmark = pytest.mark.anyio


class AsyncEcho(AsyncWebsocketConsumer):
    """Echo frames; record what happened in ``log``."""

    log: list[Any]

    async def connect(self) -> None:
        self.log.append("connect")
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.log.append((text_data, bytes_data))
        if text_data == "close":
            await self.close(code=4123, reason="asked")
        else:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    async def disconnect(self, code: int) -> None:
        self.log.append(("disconnect", code))


class SyncEcho(WebsocketConsumer):
    """The same as :class:`AsyncEcho`, written synchronously."""

    log: list[Any]

    def connect(self) -> None:
        self.log.append("connect")
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.log.append((text_data, bytes_data))
        if text_data == "close":
            self.close(code=4123, reason="asked")
        else:
            self.send(text_data=text_data, bytes_data=bytes_data)

    def disconnect(self, code: int) -> None:
        self.log.append(("disconnect", code))


ECHOES = [pytest.param(AsyncEcho, id="async"), pytest.param(SyncEcho, id="sync")]
Echo = type[AsyncEcho] | type[SyncEcho]


@pytest.mark.parametrize("echo", ECHOES)
async def test_frames_round_trip_and_disconnect_gets_the_code(echo: Echo) -> None:
    log: list[Any] = []
    async with WebsocketCommunicator(echo.as_asgi(log=log), "/ws/") as comm:
        assert await comm.connect() == (True, None)
        await comm.send_to(text_data="hello")
        assert await comm.receive_from() == "hello"
        await comm.send_to(bytes_data=b"w\0\0\0")
        assert await comm.receive_from() == b"w\0\0\0"
        await comm.disconnect(code=4001)
    assert log == ["connect", ("hello", None), (None, b"w\0\0\0"), ("disconnect", 4001)]


@pytest.mark.parametrize("echo", ECHOES)
async def test_empty_frames_are_passed_on_and_none_text_means_bytes(echo: Echo) -> None:
    log: list[Any] = []
    async with WebsocketCommunicator(echo.as_asgi(log=log), "/ws/") as comm:
        await comm.connect()
        await comm.send_to(text_data="")
        assert await comm.receive_from() == ""
        await comm.send_to(bytes_data=b"")
        assert await comm.receive_from() == b""
        # Hypercorn sends both keys, the unused one None.
        await comm.send_input({"type": "websocket.receive", "text": None, "bytes": b"raw"})
        assert await comm.receive_from() == b"raw"
        await comm.send_input({"type": "websocket.receive", "text": "txt", "bytes": None})
        assert await comm.receive_from() == "txt"
        await comm.disconnect()
    assert log[1:5] == [("", None), (None, b""), (None, b"raw"), ("txt", None)]


@pytest.mark.parametrize("echo", ECHOES)
async def test_close_sends_code_and_reason(echo: Echo) -> None:
    async with WebsocketCommunicator(echo.as_asgi(log=[]), "/ws/") as comm:
        await comm.connect()
        await comm.send_to(text_data="close")
        assert await comm.receive_output() == {
            "type": "websocket.close",
            "code": 4123,
            "reason": "asked",
        }
        await comm.disconnect(code=4123)


async def test_async_accept_with_subprotocol_and_headers() -> None:
    class Chooser(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            assert self.scope["subprotocols"] == ["one", "two"]
            await self.accept("two", headers=[(b"x-chosen", b"two")])

    comm = WebsocketCommunicator(Chooser.as_asgi(), "/", subprotocols=["one", "two"])
    async with comm:
        assert await comm.connect() == (True, "two")
        assert comm.response_headers == [(b"x-chosen", b"two")]
        await comm.disconnect()


async def test_sync_accept_with_subprotocol_and_headers() -> None:
    class Chooser(WebsocketConsumer):
        def connect(self) -> None:
            self.accept("one", headers=[(b"x-chosen", b"one")])

    comm = WebsocketCommunicator(Chooser.as_asgi(), "/", subprotocols=["one", "two"])
    async with comm:
        assert await comm.connect() == (True, "one")
        assert comm.response_headers == [(b"x-chosen", b"one")]
        await comm.disconnect()


async def test_accept_message_is_exactly_channels_one() -> None:
    async with WebsocketCommunicator(AsyncWebsocketConsumer.as_asgi(), "/") as comm:
        await comm.send_input({"type": "websocket.connect"})
        assert await comm.receive_output() == {"type": "websocket.accept", "subprotocol": None}
        await comm.disconnect()


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_accept_and_deny_connection_exceptions_from_connect(sync: bool) -> None:
    class AsyncGate(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            raise AcceptConnection if self.scope["path"] == "/yes/" else DenyConnection

    class SyncGate(WebsocketConsumer):
        def connect(self) -> None:
            raise AcceptConnection if self.scope["path"] == "/yes/" else DenyConnection

    app = (SyncGate if sync else AsyncGate).as_asgi()
    async with WebsocketCommunicator(app, "/yes/") as comm:
        assert await comm.connect() == (True, None)
        await comm.disconnect()
    async with WebsocketCommunicator(app, "/no/") as comm:
        assert await comm.connect() == (False, 1000)


async def test_close_before_accept_refuses_and_disconnect_still_runs() -> None:
    codes: list[int] = []

    class Refuser(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.close(code=4403)

        async def disconnect(self, code: int) -> None:
            codes.append(code)

    async with WebsocketCommunicator(Refuser.as_asgi(), "/") as comm:
        assert await comm.connect() == (False, 4403)
    assert codes == [1006]


@pytest.mark.parametrize("close", [True, 4000])
async def test_send_with_close(close: bool | int) -> None:
    class Closer(AsyncWebsocketConsumer):
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            await self.send(text_data="bye", close=close)

    async with WebsocketCommunicator(Closer.as_asgi(), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="x")
        assert await comm.receive_from() == "bye"
        expected = (
            {"type": "websocket.close"}
            if close is True
            else {"type": "websocket.close", "code": 4000}
        )
        assert await comm.receive_output() == expected
        await comm.disconnect()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "must pass one of bytes_data or text_data"),
        ({"text_data": "a", "bytes_data": b"b"}, "only one of"),
    ],
)
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_send_needs_exactly_one_payload(
    kwargs: dict[str, Any], match: str, sync: bool
) -> None:
    class AsyncBad(AsyncWebsocketConsumer):
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            await self.send(**kwargs)

    class SyncBad(WebsocketConsumer):
        def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            self.send(**kwargs)

    async with WebsocketCommunicator((SyncBad if sync else AsyncBad).as_asgi(), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="x")
        with pytest.raises(ValueError, match=match):
            await comm.receive_from()


# -- groups -------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_groups_are_joined_before_connect_and_left_on_disconnect(sync: bool) -> None:
    layer = InMemoryChannelLayer()
    members_at_connect: list[int] = []

    class AsyncChat(AsyncEcho):
        channel_layer = layer
        groups = ("chat", "all")

        async def connect(self) -> None:
            members_at_connect.append(layer.statistics().group_members)
            await super().connect()

    class SyncChat(SyncEcho):
        channel_layer = layer
        groups = ("chat", "all")

        def connect(self) -> None:
            stats = anyio.from_thread.run_sync(layer.statistics)
            members_at_connect.append(stats.group_members)
            super().connect()

    log: list[Any] = []
    app = (SyncChat if sync else AsyncChat).as_asgi(log=log)
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        await layer.group_send("chat", {"type": "websocket.receive", "text": "hello"})
        assert await comm.receive_from() == "hello"
        await comm.disconnect()
    assert members_at_connect == [2]
    assert log[-1] == ("disconnect", 1000)
    assert layer.statistics().group_members == 0


def test_groups_default_to_an_empty_list_per_instance() -> None:
    consumer = AsyncWebsocketConsumer()
    assert consumer.groups == []
    assert WebsocketConsumer().groups == []
    assert AsyncWebsocketConsumer.groups is None


@pytest.mark.usefixtures("no_layer")
@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_groups_without_a_layer_are_refused(sync: bool) -> None:
    class AsyncGrouped(AsyncWebsocketConsumer):
        groups = ("g",)

    class SyncGrouped(WebsocketConsumer):
        groups = ("g",)

    async with WebsocketCommunicator((SyncGrouped if sync else AsyncGrouped).as_asgi(), "/") as c:
        with pytest.raises(InvalidChannelLayerError, match="doesn't support groups"):
            await c.connect()


async def test_groups_on_a_layer_without_the_groups_extension_are_refused() -> None:
    class NoGroups(BaseChannelLayer):
        extensions = ()

        async def new_channel(self, prefix: str = "specific.") -> str:
            return "specific.x!y"

        async def receive(self, channel: str) -> dict[str, Any]:
            await anyio.sleep_forever()
            raise AssertionError

        def statistics(self) -> LayerStatistics:
            return LayerStatistics()

    class Grouped(AsyncWebsocketConsumer):
        channel_layer = NoGroups()
        groups = ("g",)

    async with WebsocketCommunicator(Grouped.as_asgi(), "/") as comm:
        with pytest.raises(InvalidChannelLayerError, match="doesn't support groups"):
            await comm.connect()


@pytest.mark.usefixtures("no_layer")
async def test_no_groups_need_no_layer() -> None:
    async with WebsocketCommunicator(AsyncWebsocketConsumer.as_asgi(), "/") as comm:
        assert (await comm.connect())[0]
        await comm.disconnect()
