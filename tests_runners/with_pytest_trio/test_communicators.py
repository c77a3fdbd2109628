"""The communicators under pytest-trio, tests marked ``@pytest.mark.trio``."""

from __future__ import annotations

import pytest
import trio

from achannels.testing import WebsocketCommunicator
from tests_runners import scenarios

pytestmark = pytest.mark.trio


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


async def test_trio_timeouts_and_the_nursery_fixture(nursery: trio.Nursery) -> None:
    alice = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    bob = WebsocketCommunicator(scenarios.Echo.as_asgi(), "/ws/")
    bob_connected = trio.Event()

    async def connect_bob() -> None:
        assert (await bob.connect())[0]
        bob_connected.set()

    with trio.fail_after(3):
        assert (await alice.connect())[0]
    nursery.start_soon(connect_bob)  # in pytest-trio's fixture nursery, another task
    with trio.move_on_after(3):
        await alice.disconnect()
    with trio.fail_after(3):
        await bob_connected.wait()
    await bob.disconnect()
