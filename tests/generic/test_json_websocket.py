"""AsyncJsonWebsocketConsumer and JsonWebsocketConsumer: JSON in text frames."""

from __future__ import annotations

import json
from typing import Any

import pytest

from achannels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from achannels.testing import WebsocketCommunicator

pytestmark = pytest.mark.anyio


class AsyncJsonEcho(AsyncJsonWebsocketConsumer):
    received: list[Any]

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.received.append(content)
        await self.send_json(content, close=content == "bye")


class SyncJsonEcho(JsonWebsocketConsumer):
    received: list[Any]

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.received.append(content)
        self.send_json(content, close=content == "bye")


ECHOES = [pytest.param(AsyncJsonEcho, id="async"), pytest.param(SyncJsonEcho, id="sync")]
Echo = type[AsyncJsonEcho] | type[SyncJsonEcho]


@pytest.mark.parametrize("echo", ECHOES)
async def test_json_round_trip_and_send_json_close(echo: Echo) -> None:
    received: list[Any] = []
    async with WebsocketCommunicator(echo.as_asgi(received=received), "/") as comm:
        await comm.connect()
        await comm.send_json_to({"hello": "world"})
        assert await comm.receive_json_from() == {"hello": "world"}
        await comm.send_json_to([1, 2.5, None])
        assert await comm.receive_json_from() == [1, 2.5, None]
        await comm.send_json_to("bye")
        assert await comm.receive_json_from() == "bye"
        assert await comm.receive_output() == {"type": "websocket.close"}
        await comm.disconnect()
    assert received == [{"hello": "world"}, [1, 2.5, None], "bye"]


async def test_async_encode_and_decode_can_be_overridden() -> None:
    class Tagged(AsyncJsonEcho):
        @classmethod
        async def decode_json(cls, text_data: str) -> Any:
            return {"decoded": json.loads(text_data)}

        @classmethod
        async def encode_json(cls, content: Any) -> str:
            return "tagged:" + json.dumps(content, sort_keys=True)

    async with WebsocketCommunicator(Tagged.as_asgi(received=[]), "/") as comm:
        await comm.connect()
        await comm.send_json_to(7)
        assert await comm.receive_from() == 'tagged:{"decoded": 7}'
        await comm.disconnect()


async def test_sync_encode_and_decode_can_be_overridden() -> None:
    class Tagged(SyncJsonEcho):
        @classmethod
        def decode_json(cls, text_data: str) -> Any:
            return {"decoded": json.loads(text_data)}

        @classmethod
        def encode_json(cls, content: Any) -> str:
            return "tagged:" + json.dumps(content, sort_keys=True)

    assert Tagged.encode_json([1]) == "tagged:[1]"
    async with WebsocketCommunicator(Tagged.as_asgi(received=[]), "/") as comm:
        await comm.connect()
        await comm.send_json_to(7)
        assert await comm.receive_from() == 'tagged:{"decoded": 7}'
        await comm.disconnect()


async def test_default_json_classmethods() -> None:
    assert JsonWebsocketConsumer.decode_json('{"a": [1]}') == {"a": [1]}
    assert JsonWebsocketConsumer.encode_json({"a": [1]}) == '{"a": [1]}'
    assert await AsyncJsonWebsocketConsumer.decode_json("[true]") == [True]
    assert await AsyncJsonWebsocketConsumer.encode_json([True]) == "[true]"
