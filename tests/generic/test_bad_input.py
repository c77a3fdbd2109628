"""A client's bad input to a generic WebSocket consumer is the client's error.

Malformed JSON closes with 1007, a binary frame to a JSON (text-only) consumer with
1003, a frame over ``max_message_size`` with 1009 - one warning line each, no error
counted, nothing re-raised by the test tools - as on the native path.
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import pytest

from achannels import Router
from achannels.exceptions import InvalidMessage
from achannels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from achannels.testing import WebsocketCommunicator
from tests.helpers import RawConnection, ws_scope

pytestmark = pytest.mark.anyio


class AsyncJsonEcho(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json(content)


class SyncJsonEcho(JsonWebsocketConsumer):
    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json(content)


class AsyncEcho(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=text_data, bytes_data=bytes_data)


JSON = [pytest.param(AsyncJsonEcho, id="async-json"), pytest.param(SyncJsonEcho, id="sync-json")]
ALL = [
    pytest.param(AsyncEcho, id="async"),
    pytest.param(SyncEcho, id="sync"),
    *JSON,
]


async def _close_code_for(app: Any, frame: dict[str, Any]) -> int:
    """Send ``frame`` after connecting; return the close code the consumer answered with."""
    async with WebsocketCommunicator(app, "/") as comm:
        connected, _ = await comm.connect()
        assert connected
        await comm.send_input({"type": "websocket.receive", **frame})
        close = await comm.receive_output()
        assert close["type"] == "websocket.close"
        await comm.wait()  # a client error is not re-raised
    code: int = close["code"]
    return code


def _achannels_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "achannels" and r.levelno == level]


async def _assert_client_error(
    app: Any, frame: dict[str, Any], code: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="achannels"):
        assert await _close_code_for(app, frame) == code
    warnings = _achannels_records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].exc_info is None  # one line, no traceback
    assert f"with {code}" in warnings[0].getMessage()
    assert _achannels_records(caplog, logging.ERROR) == []
    assert app.statistics().errors == 0


@pytest.mark.parametrize("consumer", JSON)
@pytest.mark.parametrize("text", ["{nope", "", "[1,"], ids=["brace", "empty", "cut"])
async def test_malformed_json_closes_with_1007(
    consumer: type[Any], text: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _assert_client_error(consumer.as_asgi(), {"text": text}, 1007, caplog)


@pytest.mark.parametrize("consumer", JSON)
@pytest.mark.parametrize(
    "frame",
    [pytest.param({"bytes": b"{}"}, id="binary"), pytest.param({"text": None, "bytes": b"{}"})],
)
async def test_a_binary_frame_to_a_json_consumer_closes_with_1003(
    consumer: type[Any], frame: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await _assert_client_error(consumer.as_asgi(), frame, 1003, caplog)


@pytest.mark.parametrize("consumer", ALL)
@pytest.mark.parametrize(
    "frame", [pytest.param({"text": '"' + "x" * 9 + '"'}), pytest.param({"bytes": b"x" * 11})]
)
async def test_a_frame_over_max_message_size_closes_with_1009(
    consumer: type[Any], frame: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    await _assert_client_error(consumer.as_asgi(max_message_size=10), frame, 1009, caplog)


@pytest.mark.parametrize("consumer", ALL)
async def test_max_message_size_is_a_class_attribute(
    consumer: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Small(consumer):  # type: ignore[misc]
        max_message_size = 10

    await _assert_client_error(Small.as_asgi(), {"text": '"' + "x" * 9 + '"'}, 1009, caplog)


@pytest.mark.parametrize("consumer", ALL)
async def test_a_frame_at_the_limit_passes(consumer: type[Any]) -> None:
    app = consumer.as_asgi(max_message_size=10)
    async with WebsocketCommunicator(app, "/") as comm:
        await comm.connect()
        await comm.send_to(text_data='"' + "é" * 8 + '"')  # 10 characters, 18 bytes
        assert json.loads(await comm.receive_from()) == "é" * 8
        await comm.disconnect()


@pytest.mark.parametrize("consumer", ALL)
def test_the_default_limit_is_the_routers(consumer: type[Any]) -> None:
    default = inspect.signature(Router).parameters["max_message_size"].default
    assert consumer.max_message_size == default == 1 << 20


async def test_disconnect_sees_the_close_code() -> None:
    codes: list[int] = []

    class Recorder(AsyncJsonEcho):
        async def disconnect(self, code: int) -> None:
            codes.append(code)

    assert await _close_code_for(Recorder.as_asgi(), {"text": "{nope"}) == 1007
    assert codes == [1007]


async def test_an_error_in_receive_json_is_still_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(AsyncJsonEcho):
        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            raise ValueError("handler bug")

    app: Any = Broken.as_asgi()
    with caplog.at_level(logging.WARNING, logger="achannels"):
        async with WebsocketCommunicator(app, "/") as comm:
            await comm.connect()
            await comm.send_json_to({})
            close = await comm.receive_output()
            with pytest.raises(ValueError, match="handler bug"):
                await comm.wait()
    assert close["code"] == 1011
    assert len(_achannels_records(caplog, logging.ERROR)) == 1
    assert app.statistics().errors == 1


@pytest.mark.parametrize("consumer", JSON)
async def test_a_binary_frame_closes_with_1003_under_a_server(consumer: type[Any]) -> None:
    conn = RawConnection(ws_scope())
    conn.send_input({"type": "websocket.connect"})
    conn.send_input({"type": "websocket.receive", "bytes": b"\x00"})
    await conn.run(consumer.as_asgi())
    assert (await conn.output())["type"] == "websocket.accept"
    close = await conn.output()
    assert (close["type"], close["code"]) == ("websocket.close", 1003)
    conn.close()


async def test_the_decoder_error_is_the_cause() -> None:
    with pytest.raises(InvalidMessage, match="malformed JSON") as info:
        await AsyncJsonEcho().receive(text_data="{nope")
    assert info.value.close_code == 1007
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    assert isinstance(info.value, ValueError)  # what Channels raises, still caught by it
