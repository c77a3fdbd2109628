"""achannels' promises hold for the Channels-compatible WebSocket consumers.

A busy handler is cancelled when the client leaves; group cleanup and
``disconnect()`` run whatever ended the connection; an exception closes with 1011
and reaches the test as itself; tasks started with ``self.start_soon`` belong to the
connection.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from achannels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from achannels.layers import InMemoryChannelLayer
from achannels.testing import WebsocketCommunicator
from tests.helpers import RawConnection, wait_until, ws_scope

pytestmark = pytest.mark.anyio


class Tracked(AsyncWebsocketConsumer):
    """Joins ``room``; records what happens in ``log``; sleeps for an hour when asked."""

    disconnect_check = 0.01
    groups = ("room",)
    log: list[Any]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "fail":
            raise LookupError("boom")
        await self._busy("receive")

    async def busy(self, event: dict[str, Any]) -> None:
        await self._busy("layer")

    async def _busy(self, where: str) -> None:
        self.log.append(f"busy in {where}")
        try:
            await anyio.sleep(3600)
        except anyio.get_cancelled_exc_class():
            self.log.append(f"cancelled in {where}")
            raise

    async def disconnect(self, code: int) -> None:
        self.log.append(("disconnect", code))


class SyncTracked(WebsocketConsumer):
    groups = ("room",)
    log: list[Any]

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raise LookupError("sync boom")

    def disconnect(self, code: int) -> None:
        self.log.append(("disconnect", code))


@pytest.mark.parametrize("where", ["receive", "layer"])
async def test_client_leaving_cancels_a_busy_handler_and_disconnect_runs(where: str) -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    app = Tracked.as_asgi(channel_layer=layer, log=log)
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        if where == "receive":
            await comm.send_to(text_data="work")
        else:
            await layer.group_send("room", {"type": "busy"})
        await wait_until(lambda: f"busy in {where}" in log)
        with anyio.fail_after(5):
            await comm.disconnect(code=1001, timeout=None)
    assert log == [f"busy in {where}", f"cancelled in {where}", ("disconnect", 1001)]
    assert layer.statistics().group_members == 0


@pytest.mark.parametrize("consumer", [Tracked, SyncTracked], ids=["async", "sync"])
async def test_cancelling_the_connection_still_leaves_groups_and_runs_disconnect(
    consumer: type[Tracked] | type[SyncTracked],
) -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    async with anyio.create_task_group() as tg:
        conn = RawConnection(ws_scope())
        conn.send_input({"type": "websocket.connect"})
        tg.start_soon(conn.run, consumer.as_asgi(channel_layer=layer, log=log))
        assert (await conn.output())["type"] == "websocket.accept"
        assert layer.statistics().group_members == 1
        tg.cancel_scope.cancel()
    assert log == [("disconnect", 1006)]
    assert layer.statistics().group_members == 0
    conn.close()


@pytest.mark.parametrize("consumer", [Tracked, SyncTracked], ids=["async", "sync"])
async def test_an_exception_closes_with_1011_and_cleans_up(
    consumer: type[Tracked] | type[SyncTracked], caplog: pytest.LogCaptureFixture
) -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    conn = RawConnection(ws_scope())
    conn.send_input({"type": "websocket.connect"})
    conn.send_input({"type": "websocket.receive", "text": "fail"})
    with anyio.fail_after(5):
        await conn.run(consumer.as_asgi(channel_layer=layer, log=log))
    assert (await conn.output())["type"] == "websocket.accept"
    close = await conn.output()
    assert (close["type"], close["code"]) == ("websocket.close", 1011)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert isinstance(record.exc_info and record.exc_info[1], LookupError)
    assert log == [("disconnect", 1011)]
    assert layer.statistics().group_members == 0
    conn.close()


@pytest.mark.parametrize("consumer", [Tracked, SyncTracked], ids=["async", "sync"])
async def test_an_exception_reaches_the_test_as_itself(
    consumer: type[Tracked] | type[SyncTracked],
) -> None:
    layer = InMemoryChannelLayer()
    async with WebsocketCommunicator(consumer.as_asgi(channel_layer=layer, log=[]), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="fail")
        with pytest.raises(LookupError, match="boom"):
            await comm.receive_from()
    assert layer.statistics().group_members == 0


async def test_tasks_started_with_start_soon_belong_to_the_connection() -> None:
    layer = InMemoryChannelLayer()
    log: list[str] = []

    class Ticker(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            self.start_soon(self.tick)

        async def tick(self) -> None:
            try:
                while True:
                    await self.send(text_data="tick")
                    await anyio.sleep(3600)
            finally:
                log.append("task ended")

    app: Any = Ticker.as_asgi(channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        assert await comm.receive_from() == "tick"
        assert app.statistics().tasks_live >= 1
        await comm.disconnect()
    assert log == ["task ended"]
    assert app.statistics().tasks_live == 0
    assert app.statistics().connections_live == 0


async def test_a_failing_task_fails_the_connection() -> None:
    class Failing(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            self.start_soon(self.explode)

        async def explode(self) -> None:
            raise KeyError("in the background")

    async with WebsocketCommunicator(Failing.as_asgi(), "/") as comm:
        await comm.connect()
        with pytest.raises(KeyError, match="in the background"):
            await comm.receive_from()


async def test_server_shutdown_closes_with_its_code_and_runs_disconnect() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    app: Any = Tracked.as_asgi(channel_layer=layer, log=log)
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: app.aclose_connections(code=1012, grace=5.0))
            assert await comm.receive_output() == {
                "type": "websocket.close",
                "code": 1012,
                "reason": "",
            }
            await comm.disconnect(code=1012)
    assert log == [("disconnect", 1012)]
    assert layer.statistics().group_members == 0


async def test_a_send_after_the_shutdown_close_is_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A layer event or a disconnect handler that sends after the close raises nothing."""

    class Farewell(AsyncWebsocketConsumer):
        async def disconnect(self, code: int) -> None:
            await self.send(text_data="goodbye")  # the socket is already closed

    app: Any = Farewell.as_asgi()
    with caplog.at_level(logging.ERROR, logger="achannels"):
        async with WebsocketCommunicator(app, "/") as comm:
            await comm.connect()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: app.aclose_connections(code=1001, grace=5.0))
                close = await comm.receive_output()
                await comm.disconnect(code=1001)
    assert close == {"type": "websocket.close", "code": 1001, "reason": ""}
    stats = app.statistics()
    assert (stats.sends_after_close, stats.errors) == (1, 0)
    assert not caplog.records
