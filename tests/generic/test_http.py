"""AsyncHttpConsumer: Channels 4.3's behaviour, plus responses that stream layer events."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from achannels.generic.http import AsyncHttpConsumer
from achannels.layers import InMemoryChannelLayer
from achannels.testing import ApplicationCommunicator, HttpCommunicator
from tests.helpers import RawConnection, http_scope, wait_until

pytestmark = pytest.mark.anyio


class Hello(AsyncHttpConsumer):
    """Answer with the request body, upper-cased; record ``disconnect()`` calls."""

    log: list[Any]

    async def handle(self, body: bytes) -> None:
        self.log.append(("handle", body))
        await self.send_response(200, body.upper(), headers={b"content-type": b"text/plain"})

    async def disconnect(self) -> None:
        self.log.append("disconnect")


async def test_handle_answers_and_disconnect_runs_once() -> None:
    log: list[Any] = []
    async with HttpCommunicator(Hello.as_asgi(log=log), "POST", "/", body=b"hi") as comm:
        response = await comm.get_response()
    assert response == {
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
        "body": b"HI",
    }
    assert log == [("handle", b"hi"), "disconnect"]


async def test_the_body_is_gathered_until_more_body_is_false() -> None:
    log: list[Any] = []
    async with ApplicationCommunicator(Hello.as_asgi(log=log), http_scope(method="POST")) as comm:
        await comm.send_input({"type": "http.request", "body": b"ab", "more_body": True})
        await comm.send_input({"type": "http.request", "more_body": True})  # no body key
        await comm.send_input({"type": "http.request", "body": b"cd", "more_body": False})
        start = await comm.receive_output()
        body = await comm.receive_output()
        await comm.wait()
    assert (start["status"], body["body"], body["more_body"]) == (200, b"ABCD", False)
    assert log == [("handle", b"abcd"), "disconnect"]


async def test_headers_as_a_list_and_a_streamed_body() -> None:
    class Chunks(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers(status=201, headers=[(b"x-a", b"1"), (b"x-a", b"2")])
            await self.send_body(b"one,", more_body=True)
            await self.send_body(b"two")

    async with HttpCommunicator(Chunks.as_asgi(), "GET", "/") as comm:
        response = await comm.get_response()
    assert response["status"] == 201
    assert response["headers"] == [(b"x-a", b"1"), (b"x-a", b"2")]
    assert response["body"] == b"one,two"


async def test_send_headers_defaults() -> None:
    class Empty(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body(b"")

    async with HttpCommunicator(Empty.as_asgi(), "GET", "/") as comm:
        assert await comm.get_response() == {"status": 200, "headers": [], "body": b""}


async def test_send_body_refuses_what_is_not_bytes() -> None:
    class Wrong(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body("text")  # type: ignore[arg-type]

    async with HttpCommunicator(Wrong.as_asgi(), "GET", "/") as comm:
        with pytest.raises(TypeError, match="Body is not bytes"):
            await comm.get_response()


async def test_handle_must_be_provided() -> None:
    async with HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/") as comm:
        with pytest.raises(NotImplementedError, match="must provide a handle"):
            await comm.get_response()


async def test_an_exception_in_handle_answers_500_and_disconnect_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[Any] = []

    class Broken(Hello):
        async def handle(self, body: bytes) -> None:
            raise LookupError("broken handler")

    conn = RawConnection(http_scope())
    conn.send_input({"type": "http.request", "body": b""})
    with anyio.fail_after(5):
        await conn.run(Broken.as_asgi(log=log))
    assert (await conn.output())["status"] == 500
    assert (await conn.output())["body"] == b"Internal Server Error"
    assert log == ["disconnect"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert isinstance(record.exc_info and record.exc_info[1], LookupError)
    conn.close()

    async with HttpCommunicator(Broken.as_asgi(log=[]), "GET", "/") as comm:
        with pytest.raises(LookupError, match="broken handler"):
            await comm.get_response()


async def test_client_leaving_before_the_body_ends_runs_disconnect() -> None:
    log: list[Any] = []
    async with ApplicationCommunicator(Hello.as_asgi(log=log), http_scope(method="POST")) as comm:
        await comm.send_input({"type": "http.request", "body": b"part", "more_body": True})
        await comm.send_input({"type": "http.disconnect"})
        await comm.wait()
    assert log == ["disconnect"]


async def test_client_leaving_cancels_a_busy_handle_and_disconnect_runs() -> None:
    log: list[Any] = []

    class Slow(Hello):
        disconnect_check = 0.01

        async def handle(self, body: bytes) -> None:
            self.log.append("handling")
            try:
                await anyio.sleep(3600)
            except anyio.get_cancelled_exc_class():
                self.log.append("cancelled")
                raise

    async with ApplicationCommunicator(Slow.as_asgi(log=log), http_scope()) as comm:
        await comm.send_input({"type": "http.request", "body": b""})
        await wait_until(lambda: "handling" in log)
        await comm.send_input({"type": "http.disconnect"})
        with anyio.fail_after(5):
            await comm.wait(timeout=None)
    assert log == ["handling", "cancelled", "disconnect"]


# -- beyond Channels: a response left open keeps receiving layer events ---------------------


class LongPoll(AsyncHttpConsumer):
    """Channels' documented long-polling example: a layer event finishes the response."""

    log: list[Any]

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[(b"content-type", b"application/json")])
        await self.send_body(b"", more_body=True)
        self.log.append(self.channel_name)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_body(event["text"].encode())

    async def disconnect(self) -> None:
        self.log.append("disconnect")


async def test_long_poll_finished_by_a_layer_event() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    app: Any = LongPoll.as_asgi(channel_layer=layer, log=log)
    async with HttpCommunicator(app, "GET", "/poll") as comm:
        assert (await comm.receive_response_start())["status"] == 200
        assert await comm.receive_body_chunk() == b""
        await wait_until(lambda: bool(log))
        await layer.send(log[0], {"type": "chat.message", "text": '{"m": 1}'})
        response = await comm.get_response()
    assert response["body"] == b'{"m": 1}'
    assert log[1:] == ["disconnect"]
    assert app.statistics().connections_live == 0


async def test_long_poll_ends_by_itself_once_finished() -> None:
    """No ``http.disconnect`` from the server is needed once a handler ends the response."""
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    conn = RawConnection(http_scope())
    conn.send_input({"type": "http.request", "body": b""})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, LongPoll.as_asgi(channel_layer=layer, log=log))
        assert (await conn.output())["type"] == "http.response.start"
        assert (await conn.output())["more_body"] is True
        await wait_until(lambda: bool(log))
        await layer.send(log[0], {"type": "chat.message", "text": "done"})
        last = await conn.output()
        with anyio.fail_after(5):
            await conn.finished.wait()
    assert (last["body"], last["more_body"]) == (b"done", False)
    assert log[1:] == ["disconnect"]
    conn.close()


class Feed(AsyncHttpConsumer):
    """Server-sent events: stream the ``news`` group's messages until the client leaves."""

    log: list[Any]

    async def handle(self, body: bytes) -> None:
        assert self.channel_layer is not None
        assert self.channel_name is not None
        await self.channel_layer.group_add("news", self.channel_name)
        await self.send_headers(
            headers=[(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        )
        await self.send_body(b": connected\n\n", more_body=True)

    async def news_item(self, event: dict[str, Any]) -> None:
        await self.send_body(f"data: {event['text']}\n\n".encode(), more_body=True)

    async def disconnect(self) -> None:
        assert self.channel_layer is not None
        assert self.channel_name is not None
        await self.channel_layer.group_discard("news", self.channel_name)
        self.log.append("disconnect")


async def test_sse_streams_group_messages_until_the_client_leaves() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    app: Any = Feed.as_asgi(channel_layer=layer, log=log)
    async with (
        HttpCommunicator(app, "GET", "/feed") as one,
        HttpCommunicator(app, "GET", "/feed") as two,
    ):
        for comm in (one, two):
            start = await comm.receive_response_start()
            assert (b"content-type", b"text/event-stream") in start["headers"]
            assert await comm.receive_body_chunk() == b": connected\n\n"
        assert layer.statistics().group_members == 2
        for text in ("first", "second"):
            await layer.group_send("news", {"type": "news.item", "text": text})
            for comm in (one, two):
                assert await comm.receive_body_chunk() == f"data: {text}\n\n".encode()
        await one.send_disconnect()
        assert layer.statistics().group_members == 1
        await layer.group_send("news", {"type": "news.item", "text": "third"})
        assert await two.receive_body_chunk() == b"data: third\n\n"
        await two.send_disconnect()
    assert log == ["disconnect", "disconnect"]
    assert layer.statistics().group_members == 0
    assert (app.statistics().connections_live, app.statistics().tasks_live) == (0, 0)


async def test_sse_connection_cancelled_by_the_server_still_leaves_the_group() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    conn = RawConnection(http_scope("/feed"))
    conn.send_input({"type": "http.request", "body": b""})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, Feed.as_asgi(channel_layer=layer, log=log))
        await conn.output()
        await conn.output()
        assert layer.statistics().group_members == 1
        tg.cancel_scope.cancel()
    assert log == ["disconnect"]
    assert layer.statistics().group_members == 0
    conn.close()


async def test_a_busy_layer_handler_is_cancelled_when_the_client_leaves() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []

    class Stuck(Feed):
        async def news_item(self, event: dict[str, Any]) -> None:
            self.log.append("busy")
            try:
                await anyio.sleep(3600)
            except anyio.get_cancelled_exc_class():
                self.log.append("cancelled")
                raise

    async with HttpCommunicator(Stuck.as_asgi(channel_layer=layer, log=log), "GET", "/") as comm:
        await comm.receive_body_chunk()
        await layer.group_send("news", {"type": "news.item", "text": "x"})
        await wait_until(lambda: "busy" in log)
        with anyio.fail_after(5):
            await comm.send_disconnect(timeout=None)
    assert log == ["busy", "cancelled", "disconnect"]
    assert layer.statistics().group_members == 0
