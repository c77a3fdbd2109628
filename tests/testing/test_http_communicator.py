"""Tests for ``HttpCommunicator``: whole responses, streaming, the client leaving."""

from __future__ import annotations

import anyio
import pytest

from achannels._asgi import Receive, Scope, Send
from achannels.testing import HttpCommunicator


class Hello:
    """Answer ``Hello, <body>`` in two chunks; note the scope and what came after."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.after: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        request = await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"Hello, ", "more_body": True})
        await send({"type": "http.response.body", "body": request["body"]})
        self.after.append((await receive())["type"])


class Events:
    """Stream three server-sent events, then wait for the client to leave."""

    def __init__(self) -> None:
        self.client_left = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True}
            )
        message = await receive()
        self.client_left = message["type"] == "http.disconnect"


@pytest.mark.anyio
async def test_get_response() -> None:
    app = Hello()
    headers = [(b"host", b"testserver")]
    async with HttpCommunicator(app, "post", "/greet/%7Eme/?lang=en", b"World", headers) as comm:
        response = await comm.get_response()
    assert response == {
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
        "body": b"Hello, World",
    }
    assert app.scope == {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/greet/~me/",
        "query_string": b"lang=en",
        "headers": headers,
    }
    # The exchange is over: the app was told the client is gone and it returned.
    assert app.after == ["http.disconnect"]


def test_body_must_be_bytes() -> None:
    with pytest.raises(AssertionError):  # as Channels' assert
        HttpCommunicator(Hello(), "GET", "/", body="text")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_get_response_in_call_style() -> None:
    comm = HttpCommunicator(Hello(), "GET", "/", b"you")
    response = await comm.get_response()
    assert response["body"] == b"Hello, you"


@pytest.mark.anyio
async def test_streaming_chunk_by_chunk_then_the_client_leaves() -> None:
    app = Events()
    async with HttpCommunicator(app, "GET", "/events/") as comm:
        start = await comm.receive_response_start()
        assert start == {"status": 200, "headers": [(b"content-type", b"text/event-stream")]}
        assert await comm.receive_response_start() == start
        for n in range(3):
            assert await comm.receive_body_chunk() == b"data: %d\n\n" % n
        assert await comm.receive_nothing()
        await comm.send_disconnect()
    assert app.client_left


@pytest.mark.anyio
async def test_streaming_in_call_style() -> None:
    app = Events()
    comm = HttpCommunicator(app, "GET", "/events/")
    assert await comm.receive_body_chunk() == b"data: 0\n\n"
    await comm.send_disconnect()
    assert app.client_left


@pytest.mark.anyio
async def test_chunks_end_with_end_of_stream_and_get_response_keeps_them() -> None:
    async with HttpCommunicator(Hello(), "GET", "/", b"there") as comm:
        assert await comm.receive_body_chunk() == b"Hello, "
        assert await comm.receive_body_chunk() == b"there"
        with pytest.raises(anyio.EndOfStream):
            await comm.receive_body_chunk()
        assert (await comm.get_response())["body"] == b"Hello, there"


@pytest.mark.anyio
async def test_send_disconnect_cancels_an_app_that_ignores_it() -> None:
    cancelled = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancelled
        await send({"type": "http.response.start", "status": 200})
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    async with HttpCommunicator(app, "GET", "/") as comm:
        assert (await comm.receive_response_start())["status"] == 200
        with pytest.raises(TimeoutError):
            await comm.send_disconnect(timeout=0.01)
    assert cancelled


@pytest.mark.anyio
async def test_app_exception_after_a_500_surfaces_from_get_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 500})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
        await anyio.lowlevel.checkpoint()  # the runtime's cleanup
        raise RuntimeError("view failed")

    async with HttpCommunicator(app, "GET", "/") as comm:
        with pytest.raises(RuntimeError, match="view failed"):
            await comm.get_response()

    comm = HttpCommunicator(app, "GET", "/")
    with pytest.raises(RuntimeError, match="view failed"):
        await comm.get_response()


@pytest.mark.anyio
async def test_get_response_timeout() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    comm = HttpCommunicator(app, "GET", "/")
    with pytest.raises(TimeoutError):
        await comm.get_response(timeout=0.01)


@pytest.mark.anyio
async def test_out_of_order_messages_fail_clearly() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"too early"})

    async with HttpCommunicator(app, "GET", "/") as comm:
        with pytest.raises(AssertionError) as info:
            await comm.get_response()
    assert str(info.value) == "Expected type 'http.response.start', but was 'http.response.body'"
