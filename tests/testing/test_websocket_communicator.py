"""Tests for ``WebsocketCommunicator`` against small raw ASGI applications."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from achannels._asgi import Receive, Scope, Send
from achannels.testing import WebsocketCommunicator


class Echo:
    """Accept (with the first offered subprotocol), echo frames, note the disconnect."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.disconnect_code: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        assert (await receive())["type"] == "websocket.connect"
        subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnect_code = message["code"]
                return
            if message.get("text") == "close":
                await send({"type": "websocket.close", "code": 4000, "reason": "asked to"})
                continue
            await send({"type": "websocket.send", **_payload(message)})


def _payload(message: dict[str, Any] | Any) -> dict[str, Any]:
    if message.get("text") is not None:
        return {"text": message["text"]}
    return {"bytes": message["bytes"]}


class Forever:
    """Accept, then wait forever; note whether it was cancelled and has finished."""

    def __init__(self) -> None:
        self.cancelled = False
        self.finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
            await send({"type": "websocket.accept"})
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.finished = True


async def crash_like_the_runtime(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept; on "boom" close with 1011, clean up, then re-raise (as achannels does)."""
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    await send({"type": "websocket.close", "code": 1011})
    await anyio.lowlevel.checkpoint()  # the runtime's shielded cleanup
    raise ValueError("consumer failed")


# -- the handshake -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_scope_is_built_like_channels() -> None:
    app = Echo()
    headers = [(b"origin", b"http://example.com")]
    async with WebsocketCommunicator(
        app, "/ws/caf%C3%A9/?room=1&x=2", headers=headers, subprotocols=["chat"]
    ) as comm:
        await comm.connect()
    assert app.scope == {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws/café/",
        "query_string": b"room=1&x=2",
        "headers": headers,
        "subprotocols": ["chat"],
        "extensions": {"websocket.http.response": {}},
    }


def test_spec_version_and_path_type() -> None:
    comm = WebsocketCommunicator(Echo(), "/", spec_version="2.3")
    assert comm.scope["spec_version"] == "2.3"
    assert comm.scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    with pytest.raises(TypeError, match=r"^Expected str, got <class 'bytes'>$"):
        WebsocketCommunicator(Echo(), b"/")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_connect_returns_the_subprotocol() -> None:
    async with WebsocketCommunicator(Echo(), "/", subprotocols=["v2", "v1"]) as comm:
        assert await comm.connect() == (True, "v2")
        assert comm.response_headers == []
    async with WebsocketCommunicator(Echo(), "/") as comm:
        assert await comm.connect() == (True, None)


@pytest.mark.anyio
@pytest.mark.parametrize(("close", "code"), [({"code": 4003}, 4003), ({}, 1000)])
async def test_refused_connect(close: dict[str, Any], code: int) -> None:
    events: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", **close})
        events.append(dict(await receive()))

    async with WebsocketCommunicator(app, "/") as comm:
        assert await comm.connect() == (False, code)
        assert comm.close_code == code
    # Like a server, the communicator told the app the connection is gone.
    assert events == [{"type": "websocket.disconnect", "code": 1006}]


@pytest.mark.anyio
async def test_denial_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        start = {"type": "websocket.http.response.start", "status": 403}
        await send({**start, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"away"})

    async with WebsocketCommunicator(app, "/") as comm:
        assert comm.response is None
        assert await comm.connect() == (False, 403)
        assert comm.response == {
            "status": 403,
            "headers": [(b"content-type", b"text/plain")],
            "body": b"go away",
        }


@pytest.mark.anyio
async def test_connect_timeout() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    async with WebsocketCommunicator(app, "/") as comm:
        with pytest.raises(TimeoutError):
            await comm.connect(timeout=0.01)


@pytest.mark.anyio
async def test_connect_raises_the_app_exception() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1011})
        await anyio.lowlevel.checkpoint()
        raise KeyError("in connect")

    async with WebsocketCommunicator(app, "/") as comm:
        with pytest.raises(KeyError, match="in connect"):
            await comm.connect()


# -- frames ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_echo_text_and_bytes_then_disconnect() -> None:
    app = Echo()
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="hello")
        assert await comm.receive_from() == "hello"
        await comm.send_to(bytes_data=b"\x00\x01")
        assert await comm.receive_from() == b"\x00\x01"
        await comm.send_to(text_data="")
        assert await comm.receive_from() == ""
        await comm.disconnect(code=1001)
    assert app.disconnect_code == 1001


@pytest.mark.anyio
async def test_json_round_trip() -> None:
    async with WebsocketCommunicator(Echo(), "/") as comm:
        await comm.connect()
        await comm.send_json_to({"message": ["hi", 1, None]})
        assert await comm.receive_json_from() == {"message": ["hi", 1, None]}
        await comm.send_to(bytes_data=b"{}")
        with pytest.raises(AssertionError) as info:
            await comm.receive_json_from()
    assert str(info.value) == "JSON data is not a text frame, it is <class 'bytes'>"


@pytest.mark.anyio
async def test_send_to_checks_its_arguments() -> None:
    async with WebsocketCommunicator(Echo(), "/") as comm:
        await comm.connect()
        # Channels' exception type and messages.
        exactly_one = r"^You must supply exactly one of text_data or bytes_data$"
        with pytest.raises(AssertionError, match=exactly_one):
            await comm.send_to()
        with pytest.raises(AssertionError, match=exactly_one):
            await comm.send_to(text_data="a", bytes_data=b"a")
        with pytest.raises(AssertionError, match=r"^The text_data argument must be a str$"):
            await comm.send_to(text_data=b"a")  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match=r"^The bytes_data argument must be bytes$"):
            await comm.send_to(bytes_data="a")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_receive_nothing() -> None:
    async with WebsocketCommunicator(Echo(), "/") as comm:
        await comm.connect()
        assert await comm.receive_nothing()
        await comm.send_to(text_data="x")
        assert not await comm.receive_nothing()
        assert await comm.receive_from() == "x"


@pytest.mark.anyio
async def test_receive_from_timeout() -> None:
    async with WebsocketCommunicator(Echo(), "/") as comm:
        await comm.connect()
        with pytest.raises(TimeoutError):
            await comm.receive_from(timeout=0.01)


@pytest.mark.anyio
async def test_receive_from_a_close_names_the_code() -> None:
    app = Echo()
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="close")
        with pytest.raises(AssertionError) as info:
            await comm.receive_from()
        # Channels' message, then the code and reason.
        assert str(info.value) == (
            "Expected type 'websocket.send', but was 'websocket.close' "
            "(code 4000, reason 'asked to')"
        )
        assert (comm.close_code, comm.close_reason) == (4000, "asked to")
    assert app.disconnect_code == 4000


@pytest.mark.anyio
async def test_receive_output_returns_the_raw_close() -> None:
    async with WebsocketCommunicator(Echo(), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="close")
        close = await comm.receive_output()
        assert close == {"type": "websocket.close", "code": 4000, "reason": "asked to"}
        assert comm.close_code == 4000
        await comm.disconnect(code=4000)


# -- errors and structure -----------------------------------------------------------------


@pytest.mark.anyio
async def test_app_exception_surfaces_from_receive_from() -> None:
    async with WebsocketCommunicator(crash_like_the_runtime, "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="boom")
        with pytest.raises(ValueError, match="consumer failed"):
            await comm.receive_from()


@pytest.mark.anyio
async def test_app_exception_surfaces_at_block_exit() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise ValueError("consumer failed")  # no checkpoint: failed once accepted

    with pytest.raises(ValueError, match="consumer failed"):
        async with WebsocketCommunicator(app, "/") as comm:
            await comm.connect()


@pytest.mark.anyio
async def test_app_exception_in_call_style() -> None:
    comm = WebsocketCommunicator(crash_like_the_runtime, "/")
    await comm.connect()
    await comm.send_to(text_data="boom")
    with pytest.raises(ValueError, match="consumer failed"):
        await comm.receive_from()
    with pytest.raises(ValueError, match="consumer failed"):
        await comm.disconnect()


@pytest.mark.anyio
async def test_leaving_the_block_cancels_the_app() -> None:
    app = Forever()
    async with WebsocketCommunicator(app, "/") as comm:
        assert await comm.connect() == (True, None)
        assert not app.finished
    assert app.cancelled
    assert app.finished


@pytest.mark.anyio
async def test_call_style_without_async_with() -> None:
    app = Echo()
    comm = WebsocketCommunicator(app, "/", subprotocols=["p"])
    connected, subprotocol = await comm.connect()
    assert (connected, subprotocol) == (True, "p")
    await comm.send_json_to({"n": 1})
    assert await comm.receive_json_from() == {"n": 1}
    await comm.disconnect()
    assert app.disconnect_code == 1000
    await comm.disconnect()  # already over: nothing to do


@pytest.mark.anyio
async def test_call_style_refused_connect_ends_the_communicator() -> None:
    finished = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
            await send({"type": "websocket.close", "code": 4001})
            await anyio.sleep_forever()  # ignores the disconnect: gets cancelled
        finally:
            finished.set()

    comm = WebsocketCommunicator(app, "/")
    assert await comm.connect(timeout=0.01) == (False, 4001)
    assert finished.is_set()


@pytest.mark.anyio
async def test_call_style_stop_cancels_the_app() -> None:
    app = Forever()
    comm = WebsocketCommunicator(app, "/")
    await comm.connect()
    await comm.stop()
    assert app.cancelled


@pytest.mark.anyio
async def test_call_style_inside_one_cancel_scope() -> None:
    # The first call and the finishing call are in the same scope: allowed.
    with anyio.fail_after(5):
        comm = WebsocketCommunicator(Echo(), "/")
        assert await comm.connect() == (True, None)
        await comm.send_to(text_data="in scope")
        assert await comm.receive_from() == "in scope"
        await comm.disconnect()


@pytest.mark.anyio
async def test_call_style_communicators_end_in_any_order() -> None:
    """The common Channels pattern: connect alice and bob, disconnect alice first."""
    alice_app, bob_app = Echo(), Echo()
    alice = WebsocketCommunicator(alice_app, "/")
    bob = WebsocketCommunicator(bob_app, "/")
    assert (await alice.connect())[0] is True
    assert (await bob.connect())[0] is True
    await alice.send_to(text_data="a")
    await bob.send_to(text_data="b")
    assert await alice.receive_from() == "a"
    await alice.disconnect()
    assert await bob.receive_from() == "b"
    carol = WebsocketCommunicator(Echo(), "/")
    assert (await carol.connect())[0] is True
    await bob.disconnect()
    await carol.disconnect()
    assert (alice_app.disconnect_code, bob_app.disconnect_code) == (1000, 1000)
