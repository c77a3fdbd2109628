"""Function and class consumers run on one runtime and end the same way.

Each behaviour is checked for both styles side by side: the error -> close code and
reason table, the order in which a connection ends (groups left before the close
frame, on both backends), frames sent after the server closed the socket, the state
checks class consumers now share, and group membership recorded before the layer
call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from achannels import HTTPException, InvalidMessage, Router, WebSocket
from achannels._outcome import Blame, fit_reason, outcome_for
from achannels.consumer import AsyncConsumer
from achannels.exceptions import (
    MessageTooLarge,
    RequestAborted,
    StopConsumer,
    WebSocketDisconnect,
    WebSocketStateError,
)
from achannels.generic.websocket import AsyncWebsocketConsumer
from achannels.layers import InMemoryChannelLayer
from tests.helpers import RawConnection, wait_until, ws_scope

# -- the table, sans-IO --------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "blame", "code", "status"),
    [
        (None, Blame.NONE, 1000, 503),
        (StopConsumer(), Blame.NONE, 1000, 503),
        (WebSocketDisconnect(1001), Blame.GONE, 1000, 503),
        (RequestAborted(), Blame.GONE, 1000, 503),
        (InvalidMessage("bad json"), Blame.CLIENT, 1007, 400),
        (InvalidMessage("binary", close_code=1003), Blame.CLIENT, 1003, 400),
        (MessageTooLarge("big"), Blame.CLIENT, 1009, 413),
        (HTTPException(403, "no"), Blame.CLIENT, 1008, 403),
        (HTTPException(503), Blame.SERVER, 1011, 503),
        (LookupError("bug"), Blame.SERVER, 1011, 500),
    ],
)
def test_one_table_maps_errors_to_what_the_client_sees(
    error: BaseException | None, blame: Blame, code: int, status: int
) -> None:
    outcome = outcome_for(error)
    assert (outcome.blame, outcome.close_code, outcome.status) == (blame, code, status)


def test_close_reasons_fit_a_close_frame() -> None:
    outcome = outcome_for(InvalidMessage("é" * 200))
    assert len(outcome.close_reason.encode()) <= 123
    assert fit_reason("short") == "short"
    assert outcome_for(HTTPException(404)).detail == "Not Found"


# -- both styles, side by side -------------------------------------------------------

App = Callable[[InMemoryChannelLayer], Any]


def _native(layer: InMemoryChannelLayer) -> Router:
    router = Router(layer=layer, disconnect_check=0.01)

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("room")
        async for frame in ws:
            if frame == "crash":
                raise LookupError("boom")
            if frame == "bad":
                raise InvalidMessage("that frame was not JSON")
            await ws.send_text(str(frame))

    return router


class _Chat(AsyncWebsocketConsumer):
    groups = ("room",)
    disconnect_check = 0.01

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "crash":
            raise LookupError("boom")
        if text_data == "bad":
            raise InvalidMessage("that frame was not JSON")
        await self.send(text_data=text_data)


def _class(layer: InMemoryChannelLayer) -> Any:
    return _Chat.as_asgi(channel_layer=layer)


STYLES = pytest.mark.parametrize("make_app", [_native, _class], ids=["function", "class"])


_OPENED: list[RawConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _connection() -> RawConnection:
    conn = RawConnection(ws_scope())
    _OPENED.append(conn)
    return conn


async def _open(
    tg: anyio.abc.TaskGroup, make_app: App, layer: InMemoryChannelLayer
) -> RawConnection:
    conn = _connection()
    conn.send_input({"type": "websocket.connect"})
    tg.start_soon(conn.run, make_app(layer))
    assert (await conn.output())["type"] == "websocket.accept"
    await wait_until(lambda: layer.statistics().group_members == 1)
    return conn


@pytest.mark.anyio
@STYLES
@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [("crash", 1011, "internal error"), ("bad", 1007, "that frame was not JSON")],
)
async def test_both_styles_close_with_the_same_code_and_reason(
    make_app: App, frame: str, code: int, reason: str
) -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tg:
        conn = await _open(tg, make_app, layer)
        conn.send_input({"type": "websocket.receive", "text": frame})
        close = await conn.output()
        assert (close["type"], close["code"], close["reason"]) == ("websocket.close", code, reason)
        # Groups were left before the close frame went out: on either backend, a
        # client (or a test) that has seen the close finds the membership gone.
        assert layer.statistics().group_members == 0
        conn.send_input({"type": "websocket.disconnect", "code": code})
        await conn.finished.wait()


@pytest.mark.anyio
@STYLES
async def test_frames_after_the_server_closed_the_socket_are_dropped_and_counted(
    make_app: App,
) -> None:
    layer = InMemoryChannelLayer()
    app = make_app(layer)
    async with anyio.create_task_group() as tg:
        conn = _connection()
        conn.send_input({"type": "websocket.connect"})
        tg.start_soon(conn.run, app)
        assert (await conn.output())["type"] == "websocket.accept"
        await wait_until(lambda: layer.statistics().group_members == 1)
        tg.start_soon(lambda: app.aclose_connections(code=1012, grace=5.0))
        close = await conn.output()
        assert (close["type"], close["code"]) == ("websocket.close", 1012)
        # The client's frame still reaches the consumer, whose echo nobody can get.
        conn.send_input({"type": "websocket.receive", "text": "late"})
        await wait_until(lambda: app.statistics().sends_after_close == 1)
        conn.send_input({"type": "websocket.disconnect", "code": 1012})
        await conn.finished.wait()
    assert app.statistics().errors == 0


@pytest.mark.anyio
async def test_class_consumers_get_the_websocket_state_checks() -> None:
    """Accepting twice and sending before accept fail as on the native path."""
    seen: list[type[BaseException]] = []

    class Careless(AsyncConsumer):
        channel_layer = None

        async def websocket_connect(self, message: dict[str, Any]) -> None:
            for bad in (self._send_early, self._accept_twice):
                try:
                    await bad()
                except WebSocketStateError as exc:
                    seen.append(type(exc))

        async def _send_early(self) -> None:
            await self.send({"type": "websocket.send", "text": "too early"})

        async def _accept_twice(self) -> None:
            await self.send({"type": "websocket.accept"})
            await self.send({"type": "websocket.accept"})

        async def websocket_disconnect(self, message: dict[str, Any]) -> None:
            raise StopConsumer

    async with anyio.create_task_group() as tg:
        conn = _connection()
        conn.send_input({"type": "websocket.connect"})
        tg.start_soon(conn.run, Careless.as_asgi())
        assert (await conn.output())["type"] == "websocket.accept"
        conn.send_input({"type": "websocket.disconnect", "code": 1000})
        await conn.finished.wait()
    assert seen == [WebSocketStateError, WebSocketStateError]


@pytest.mark.anyio
@STYLES
async def test_a_frame_over_the_limit_closes_with_1009(make_app: App) -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tg:
        conn = await _open(tg, make_app, layer)
        conn.send_input({"type": "websocket.receive", "text": "x" * ((1 << 20) + 1)})
        close = await conn.output()
        assert (close["code"], close["reason"]) == (1009, "message too large")
        conn.send_input({"type": "websocket.disconnect", "code": 1009})
        await conn.finished.wait()


@pytest.mark.anyio
async def test_an_http_exception_before_accept_denies_with_its_status() -> None:
    router = Router()

    @router.websocket("/ws/")
    async def private(ws: WebSocket) -> None:
        raise HTTPException(403, "members only")

    conn = _connection()
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        start, body = await conn.output(), await conn.output()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 403)
    assert body["body"] == b"members only"
    assert router.statistics().errors == 0


class _SlowLayer(InMemoryChannelLayer):
    """``group_add`` records the member, then waits: a networked layer's window."""

    def __init__(self) -> None:
        super().__init__()
        self.in_group_add = anyio.Event()

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.in_group_add.set()
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_a_group_add_cancelled_midway_is_still_cleaned_up() -> None:
    layer = _SlowLayer()
    router = Router(layer=layer)

    @router.websocket("/ws/")
    async def joins(ws: WebSocket) -> None:
        await ws.accept()
        await ws.group_add("room")

    conn = _connection()
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        assert (await conn.output())["type"] == "websocket.accept"
        await layer.in_group_add.wait()
        assert layer.statistics().group_members == 1
        conn.send_input({"type": "websocket.disconnect", "code": 1001})
        await conn.finished.wait()
    assert layer.statistics().group_members == 0


@pytest.mark.anyio
async def test_router_layer_set_after_construction_is_the_one_connections_use() -> None:
    router = Router()
    layer = InMemoryChannelLayer()
    router.layer = layer
    used: list[object] = []

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        used.append(ws.channel_layer)
        await ws.close()

    conn = _connection()
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        assert (await conn.output())["type"] == "websocket.close"
    assert used == [layer]
