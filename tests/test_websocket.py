"""The WebSocket object, through the test communicators."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from achannels import Router, WebSocket, WebSocketDisconnect
from achannels.testing import WebsocketCommunicator

pytestmark = pytest.mark.anyio


def make_router() -> Router:
    router = Router()

    @router.websocket("/echo/")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)

    @router.websocket("/json/")
    async def json_echo(ws: WebSocket) -> None:
        await ws.accept()
        async for data in ws.iter_json():
            await ws.send_json({"echo": data})

    @router.websocket("/proto/")
    async def proto(ws: WebSocket) -> None:
        chosen = "v2.chat" if "v2.chat" in ws.subprotocols else None
        await ws.accept(subprotocol=chosen, headers=[("x-room", "lobby")])
        await ws.send_text(repr(chosen))

    @router.websocket("/deny/")
    async def deny(ws: WebSocket) -> None:
        await ws.deny(401, headers=[("www-authenticate", "Token")], body=b"who are you?")

    @router.websocket("/reject/")
    async def reject(ws: WebSocket) -> None:
        await ws.close()

    @router.websocket("/bye/")
    async def bye(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4321, "see you")

    @router.websocket("/fail/")
    async def fail(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()
        raise ZeroDivisionError("consumer bug")

    return router


async def test_text_and_bytes_echo() -> None:
    async with WebsocketCommunicator(make_router(), "/echo/") as comm:
        assert await comm.connect() == (True, None)
        await comm.send_to(text_data="héllo")
        assert await comm.receive_from() == "héllo"
        await comm.send_to(bytes_data=b"\x00\xff")
        assert await comm.receive_from() == b"\x00\xff"
        await comm.disconnect()


async def test_json_round_trip() -> None:
    async with WebsocketCommunicator(make_router(), "/json/") as comm:
        await comm.connect()
        await comm.send_json_to({"n": [1, 2, None]})
        assert await comm.receive_json_from() == {"echo": {"n": [1, 2, None]}}


async def test_malformed_json_closes_1007() -> None:
    async with WebsocketCommunicator(make_router(), "/json/") as comm:
        await comm.connect()
        await comm.send_to(text_data="{nope")
        close = await comm.receive_output()
    assert (close["type"], close["code"]) == ("websocket.close", 1007)
    assert "malformed JSON" in close["reason"]


async def test_subprotocol_and_accept_headers() -> None:
    comm = WebsocketCommunicator(make_router(), "/proto/", subprotocols=["v1.chat", "v2.chat"])
    assert await comm.connect() == (True, "v2.chat")
    assert await comm.receive_from() == "'v2.chat'"
    assert comm.response_headers is not None
    assert (b"x-room", b"lobby") in comm.response_headers
    await comm.disconnect()


async def test_unoffered_subprotocol_is_a_server_error() -> None:
    router = Router()

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept(subprotocol="nobody-asked")

    async with WebsocketCommunicator(router, "/") as comm:
        with pytest.raises(ValueError, match="was not offered"):
            await comm.connect()


async def test_deny_with_a_status_headers_and_body() -> None:
    async with WebsocketCommunicator(make_router(), "/deny/") as comm:
        assert await comm.connect() == (False, 401)
        assert comm.response is not None
        assert comm.response["body"] == b"who are you?"
        assert (b"www-authenticate", b"Token") in comm.response["headers"]


async def test_close_before_accept_refuses_the_handshake() -> None:
    async with WebsocketCommunicator(make_router(), "/reject/") as comm:
        connected, _ = await comm.connect()
    assert connected is False


async def test_unknown_route_is_denied_404() -> None:
    async with WebsocketCommunicator(make_router(), "/nowhere/") as comm:
        assert await comm.connect() == (False, 404)


async def test_server_close_code_and_reason() -> None:
    async with WebsocketCommunicator(make_router(), "/bye/") as comm:
        await comm.connect()
        close = await comm.receive_output()
    assert close == {"type": "websocket.close", "code": 4321, "reason": "see you"}


async def test_consumer_exception_surfaces_in_the_test() -> None:
    async with WebsocketCommunicator(make_router(), "/fail/") as comm:
        await comm.connect()
        await comm.send_to(text_data="go")
        with pytest.raises(ZeroDivisionError, match="consumer bug"):
            await comm.receive_from()


async def test_client_close_code_reaches_the_consumer() -> None:
    router = Router()
    seen: list[Any] = []

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason, ws.close_code))
            raise

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        await comm.send_input({"type": "websocket.disconnect", "code": 4000, "reason": "tab"})
        await comm.wait()
    assert seen == [(4000, "tab", 4000)]


async def test_tasks_started_by_the_consumer_end_with_it() -> None:
    router = Router()
    ticks: list[int] = []

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()

        async def ticker() -> None:
            for n in range(1000):
                ticks.append(n)
                await ws.send_json({"tick": n})
                await anyio.sleep(0.001)

        ws.start_soon(ticker)
        await ws.receive()  # returns when the client sends anything

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        assert await comm.receive_json_from() == {"tick": 0}
        await comm.send_to(text_data="stop")
        await comm.wait()
    assert len(ticks) < 1000, "the ticker was cancelled with its connection"
    assert router.statistics().tasks_live == 0


async def test_start_waits_for_the_task_to_report_started() -> None:
    router = Router()

    @router.websocket("/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()

        async def service(*, task_status: anyio.abc.TaskStatus[str]) -> None:
            task_status.started("ready")
            await anyio.sleep_forever()

        await ws.send_text(await ws.start(service))

    async with WebsocketCommunicator(router, "/") as comm:
        await comm.connect()
        assert await comm.receive_from() == "ready"
