"""Consumers on the channel layer: channels, groups, handlers, cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from achannels import EventSourceResponse, Request, Response, Router, WebSocket
from achannels.exceptions import InvalidChannelLayerError
from achannels.layers import InMemoryChannelLayer
from achannels.testing import HttpCommunicator, WebsocketCommunicator

from .helpers import RawConnection, chat_consumer_app, chat_router, wait_until, ws_scope

pytestmark = pytest.mark.anyio


async def test_group_message_reaches_every_member() -> None:
    layer = InMemoryChannelLayer()
    router = chat_router(layer)
    async with (
        WebsocketCommunicator(router, "/chat/blue/") as alice,
        WebsocketCommunicator(router, "/chat/blue/") as bob,
        WebsocketCommunicator(router, "/chat/green/") as carol,
    ):
        for comm in (alice, bob, carol):
            await comm.connect()
        await wait_until(lambda: layer.statistics().group_members == 3)
        await alice.send_json_to({"m": "hi"})
        assert await alice.receive_json_from() == {"message": "hi"}
        assert await bob.receive_json_from() == {"message": "hi"}
        assert await carol.receive_nothing()
        await alice.disconnect()
        await bob.disconnect()
        await carol.disconnect()
    assert layer.statistics().group_members == 0


async def test_inline_receive_event_and_channel_send() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    names: list[str] = []

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        names.append(await ws.get_channel_name())
        event = await ws.receive_event()
        await ws.send_text(event["text"])

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await wait_until(lambda: bool(names))
        await layer.send(names[0], {"type": "note", "text": "direct"})
        assert await comm.receive_from() == "direct"


async def test_a_message_type_without_handler_fails_the_connection() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("g")

        @ws.on("known")
        async def known(event: dict[str, Any]) -> None:
            await ws.send_text("known")

        await ws.receive()

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await wait_until(lambda: layer.statistics().group_members == 1)
        await layer.group_send("g", {"type": "unknown.kind"})
        with pytest.raises(LookupError, match=r"no handler for layer message type 'unknown\.kind'"):
            await comm.receive_from()


async def test_receive_event_is_refused_while_handlers_are_registered() -> None:
    router = Router(layer=InMemoryChannelLayer())

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        @ws.on("x")
        async def handler(event: dict[str, Any]) -> None: ...

        await ws.receive_event()

    async with WebsocketCommunicator(router, "/") as comm:
        with pytest.raises(RuntimeError, match="cannot be used with handlers"):
            await comm.connect()


async def test_layer_calls_without_a_layer_are_a_clear_error() -> None:
    router = Router()

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.group_add("g")

    async with WebsocketCommunicator(router, "/") as comm:
        with pytest.raises(InvalidChannelLayerError, match="pass layer= to Router"):
            await comm.connect()


async def test_sse_stream_fed_by_layer_events() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)

    @router.http("/feed")
    async def feed(request: Request) -> Response:
        await request.group_add("news")

        async def events() -> AsyncIterator[str]:
            while True:
                event = await request.receive_event()
                yield event["headline"]

        return EventSourceResponse(events(), ping=None)

    async with HttpCommunicator(router, "GET", "/feed") as comm:
        await comm.receive_response_start()
        await wait_until(lambda: layer.statistics().group_members == 1)
        await layer.group_send("news", {"type": "news", "headline": "extra"})
        assert await comm.receive_body_chunk() == b"data: extra\n\n"
        await comm.send_disconnect()
    assert layer.statistics().group_members == 0


async def test_leak_two_thousand_group_members_are_all_released() -> None:
    """Connections join groups, then disconnect, crash or are cancelled by the server."""
    layer = InMemoryChannelLayer()
    router = Router(layer=layer, disconnect_check=0.01)

    @router.websocket("/{kind}/{n:int}/")
    async def consumer(ws: WebSocket, kind: str, n: int) -> None:
        await ws.accept()
        await ws.group_add("everyone")
        await ws.group_add(f"room{n % 10}")

        @ws.on("ping")
        async def ping(event: dict[str, Any]) -> None:
            if kind == "crash":
                raise RuntimeError("handler crash")

        async for _ in ws:
            pass

    baseline = len(anyio.get_running_tasks())
    kinds = ["disconnect", "crash", "cancel"]
    for batch in range(10):
        async with anyio.create_task_group() as tg:
            conns = []
            for n in range(200):
                kind = kinds[n % 3]
                conn = RawConnection(ws_scope(f"/{kind}/{n}/"))
                conn.send_input({"type": "websocket.connect"})
                tg.start_soon(conn.run, router)
                conns.append((kind, conn))
            for _, conn in conns:
                await conn.output()
            await wait_until(lambda: layer.statistics().group_members == 400)
            await layer.group_send("everyone", {"type": "ping"})
            for kind, conn in conns:
                if kind == "disconnect":
                    conn.send_input({"type": "websocket.disconnect", "code": 1000})
            crashed = 67 * (batch + 1)
            await wait_until(lambda: router.statistics().errors >= crashed)  # noqa: B023
            tg.cancel_scope.cancel()
        for _, conn in conns:
            conn.close()
    stats = layer.statistics()
    assert (stats.group_members, stats.groups, stats.channels) == (0, 0, 0)
    assert router.statistics().connections_total == 2000
    assert (router.statistics().connections_live, router.statistics().tasks_live) == (0, 0)
    assert len(anyio.get_running_tasks()) == baseline


# -- the reader task starts with the first message ----------------------------------------


async def test_a_member_that_gets_nothing_keeps_no_reader_task() -> None:
    layer = InMemoryChannelLayer()
    router = chat_router(layer)
    async with WebsocketCommunicator(router, "/chat/blue/") as alice:
        await alice.connect()
        await wait_until(lambda: layer.statistics().group_members == 1)
        # The watcher has ended too (the consumer waits in receive()): no task at all.
        await wait_until(lambda: router.statistics().tasks_live == 0)
        await layer.group_send("chat_blue", {"type": "chat.message", "message": "one"})
        assert await alice.receive_json_from() == {"message": "one"}
        started = router.statistics().tasks_started
        for n in range(3):  # the reader, started by the first, now stays
            await layer.group_send("chat_blue", {"type": "chat.message", "message": n})
            assert await alice.receive_json_from() == {"message": n}
        assert router.statistics().tasks_started == started
        assert router.statistics().tasks_live == 1


async def test_a_class_consumer_reads_its_channel_from_the_first_message() -> None:
    layer = InMemoryChannelLayer()
    app = chat_consumer_app(layer)
    stats: Any = app
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        await wait_until(lambda: stats.statistics().tasks_live == 0)
        await layer.group_send("room", {"type": "chat.message", "message": "hi"})
        assert await comm.receive_json_from() == {"message": "hi"}
        assert stats.statistics().tasks_live == 1
    assert stats.statistics().tasks_live == 0


async def test_a_message_for_an_ending_connection_is_counted_not_handled() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    cleaning = anyio.Event()
    release = anyio.Event()
    handled: list[dict[str, Any]] = []

    @router.websocket("/")
    async def member(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("room")

        @ws.on("note")
        async def note(event: dict[str, Any]) -> None:
            handled.append(event)

        async def slow_cleanup() -> None:  # runs before the groups are left
            cleaning.set()
            await release.wait()

        ws.add_cleanup(slow_cleanup)

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await cleaning.wait()
        await layer.group_send("room", {"type": "note"})
        release.set()
        assert (await comm.receive_output())["type"] == "websocket.close"
    assert handled == []
    stats = layer.statistics()
    assert (stats.sent, stats.discarded, stats.group_members) == (1, 1, 0)


async def test_stop_reading_ends_the_reader_even_before_its_first_step() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    handled: list[Any] = []

    @router.websocket("/")
    async def member(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("room")

        @ws.on("note")
        async def note(event: dict[str, Any]) -> None:
            handled.append(event["n"])

        async for text in ws.iter_text():
            if text == "stop now":
                # This send starts the reader task; it stops before its first step.
                await layer.group_send("room", {"type": "note", "n": 1})
                ws.stop_reading()
            await ws.send_text("done")

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await comm.send_to("stop now")
        assert await comm.receive_from() == "done"
        await layer.group_send("room", {"type": "note", "n": 2})
        await comm.send_to("again")
        assert await comm.receive_from() == "done"
        await comm.disconnect()
    assert handled == []
    assert layer.statistics().discarded == 2  # dropped and counted, not lost silently


async def test_stop_reading_cancels_a_handler_in_progress() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    started = anyio.Event()
    outcome: list[str] = []

    @router.websocket("/")
    async def member(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("room")

        @ws.on("slow")
        async def slow(event: dict[str, Any]) -> None:
            started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled")
                raise

        await ws.receive_text()
        ws.stop_reading()
        await ws.send_text("stopped")
        await ws.receive_text()

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await wait_until(lambda: layer.statistics().group_members == 1)
        await layer.group_send("room", {"type": "slow"})
        await started.wait()
        await comm.send_to("stop")
        assert await comm.receive_from() == "stopped"
        await wait_until(lambda: outcome == ["cancelled"])
        await comm.disconnect()
