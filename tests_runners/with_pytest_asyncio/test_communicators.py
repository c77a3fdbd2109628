"""The communicators under pytest-asyncio, as a Channels project's tests use them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import async_timeout
import pytest

from achannels.testing import WebsocketCommunicator
from tests_runners import scenarios

pytestmark = pytest.mark.asyncio


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


@pytest.mark.parametrize(
    "deadline", [asyncio.timeout, async_timeout.timeout], ids=["asyncio", "async_timeout"]
)
async def test_asyncio_timeouts(
    deadline: Callable[[float], AbstractAsyncContextManager[Any]],
) -> None:
    alice = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    bob = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    async with deadline(3):
        assert (await alice.connect())[0]
    async with deadline(3):
        assert (await bob.connect())[0]
    async with deadline(3):
        await alice.disconnect()
    with pytest.raises(TimeoutError):
        async with deadline(0.01):
            await bob.receive_from(timeout=None)
    async with deadline(3):
        await bob.disconnect()


async def test_wait_for() -> None:
    communicator = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    assert (await asyncio.wait_for(communicator.connect(), 3))[0]
    await asyncio.wait_for(communicator.disconnect(), 3)
