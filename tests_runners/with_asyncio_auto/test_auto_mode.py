"""The communicators under pytest-asyncio's auto mode: async tests need no mark."""

from __future__ import annotations

import asyncio

from achannels.testing import WebsocketCommunicator
from tests_runners import scenarios


async def test_two_clients_end_in_any_order() -> None:
    await scenarios.two_clients_end_in_any_order()


async def test_disconnect_inside_timeouts() -> None:
    await scenarios.disconnect_inside_timeouts()


async def test_connect_in_a_scope_later_cancelled() -> None:
    await scenarios.connect_in_a_scope_later_cancelled()


async def test_left_connected() -> None:
    await scenarios.left_connected()


async def test_get_response_without_a_disconnect_handler() -> None:
    await scenarios.get_response_without_a_disconnect_handler()


async def test_async_with_form() -> None:
    await scenarios.async_with_form()


async def test_asyncio_timeout() -> None:
    communicator = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    async with asyncio.timeout(3):
        assert (await communicator.connect())[0]
    async with asyncio.timeout(3):
        await communicator.disconnect()
