"""Call-style communicators where Channels tests put them, and the host they run in.

Calls sit in timeouts and cancel scopes, run in other tasks and end communicators in
any order, or not at all. Every async test here runs in the communicator host that
achannels' pytest plugin opens around it; a few open hosts of their own to watch what
closing one does.
"""

from __future__ import annotations

import asyncio
import unittest
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import async_timeout
import pytest
from django.test import SimpleTestCase

from achannels._asgi import Message, Receive, Scope, Send
from achannels.consumer import AsyncConsumer
from achannels.generic.websocket import AsyncWebsocketConsumer
from achannels.testing import (
    ApplicationCommunicator,
    HttpCommunicator,
    WebsocketCommunicator,
    open_communicator_host,
)
from achannels.testing._runner import _current_host
from achannels.testing.pytest_plugin import in_communicator_host


class Echo(AsyncWebsocketConsumer):
    """Echo text frames; count the live connections of all instances."""

    channel_layer = None
    live = 0

    async def connect(self) -> None:
        type(self).live += 1
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)

    async def disconnect(self, code: int) -> None:
        type(self).live -= 1


class Hello(AsyncConsumer):
    """Handle only ``http.request``, as in Channels' docs."""

    channel_layer = None

    async def http_request(self, message: Message) -> None:
        await self.send({"type": "http.response.start", "status": 200})
        await self.send({"type": "http.response.body", "body": b"hello"})


class Watched:
    """A raw app that accepts and then waits forever; notes how it ended."""

    def __init__(self) -> None:
        self.running = False
        self.cancelled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.running = True
        try:
            await receive()
            await send({"type": "websocket.accept"})
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.running = False


async def fail_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    raise KeyError("app failed")


@pytest.fixture
def echo() -> Iterator[Any]:
    """``Echo.as_asgi()``; after the test (its host closed), no connection is live."""
    Echo.live = 0
    yield Echo.as_asgi()
    assert Echo.live == 0


async def talk(communicator: WebsocketCommunicator, text: str) -> None:
    await communicator.send_to(text_data=text)
    assert await communicator.receive_from() == text


# -- ending calls inside timeouts and cancel scopes ---------------------------------------


@pytest.mark.anyio
async def test_disconnect_inside_move_on_after(echo: Any) -> None:
    communicator = WebsocketCommunicator(echo, "/")
    assert await communicator.connect() == (True, None)
    with anyio.move_on_after(3):
        await communicator.disconnect()
    assert Echo.live == 0


@pytest.mark.anyio
async def test_every_call_inside_its_own_fail_after(echo: Any) -> None:
    communicator = WebsocketCommunicator(echo, "/")
    with anyio.fail_after(3):
        assert (await communicator.connect())[0]
    with anyio.fail_after(3):
        await talk(communicator, "hi")
    with anyio.fail_after(3):
        await communicator.disconnect()
    assert Echo.live == 0


@pytest.mark.anyio
async def test_get_response_inside_fail_after() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with anyio.fail_after(3):
        response = await HttpCommunicator(app, "GET", "/").get_response()
    assert response["status"] == 204


@pytest.mark.anyio
async def test_connect_inside_a_scope_that_is_later_cancelled(echo: Any) -> None:
    communicator = WebsocketCommunicator(echo, "/")
    with anyio.CancelScope() as scope:
        assert (await communicator.connect())[0]
        scope.cancel()
        await anyio.sleep_forever()
    assert scope.cancelled_caught
    # Cancelling the scope of the call that started the application left it running.
    await talk(communicator, "still here")
    await communicator.disconnect()
    assert Echo.live == 0


@pytest.mark.anyio
async def test_connect_in_one_scope_disconnect_in_another(echo: Any) -> None:
    alice = WebsocketCommunicator(echo, "/")
    bob = WebsocketCommunicator(echo, "/")
    with anyio.move_on_after(3):
        assert (await alice.connect())[0]
    with anyio.move_on_after(3):
        assert (await bob.connect())[0]
        with anyio.move_on_after(3):
            await alice.disconnect()
    await talk(bob, "bob")
    with anyio.fail_after(3):
        await bob.disconnect()
    assert Echo.live == 0


@pytest.mark.anyio
async def test_a_timed_out_disconnect_cancels_the_app() -> None:
    app = Watched()
    communicator = WebsocketCommunicator(app, "/")
    await communicator.connect()
    with anyio.move_on_after(0.05) as scope:
        # The app ignores the disconnect; the caller's deadline comes first.
        await communicator.disconnect(timeout=None)
    assert scope.cancelled_caught
    await communicator.wait()  # the ended communicator: joins the cancelled app
    assert app.cancelled
    assert not app.running


@pytest.mark.anyio
async def test_a_connect_cancelled_while_waiting_cancels_the_app() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    communicator = WebsocketCommunicator(silent, "/")
    with anyio.move_on_after(0.01):
        await communicator.connect(timeout=None)
    with anyio.fail_after(3):
        await communicator.wait()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "deadline",
    [asyncio.timeout, async_timeout.timeout],
    ids=["asyncio.timeout", "async_timeout"],
)
async def test_asyncio_timeouts(
    echo: Any, deadline: Callable[[float], AbstractAsyncContextManager[Any]]
) -> None:
    alice = WebsocketCommunicator(echo, "/")
    bob = WebsocketCommunicator(echo, "/")
    async with deadline(3):
        assert (await alice.connect())[0]
    assert (await bob.connect())[0]
    async with deadline(3):
        await alice.disconnect()
    async with deadline(3):
        await talk(bob, "bob")
    # A timeout that expires while a call waits cancels the wait, not the host.
    with pytest.raises(TimeoutError):
        async with deadline(0.01):
            await bob.receive_from(timeout=None)
    async with deadline(3):
        await bob.disconnect()
    assert Echo.live == 0


# -- order, tasks, and what the end of the test does -------------------------------------


@pytest.mark.anyio
async def test_communicators_end_in_any_order_across_tasks(echo: Any) -> None:
    first, second, third = (WebsocketCommunicator(echo, "/") for _ in range(3))
    assert (await first.connect())[0]
    async with anyio.create_task_group() as task_group:
        # Started in a child task, ended by the test's task, and the other way round.
        task_group.start_soon(second.connect)
        task_group.start_soon(third.connect)
    await second.disconnect()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(first.disconnect)
    await talk(third, "third")
    await third.disconnect()
    assert Echo.live == 0


@pytest.mark.anyio
async def test_the_end_of_the_host_cancels_and_joins_what_runs() -> None:
    apps = [Watched(), Watched()]
    async with open_communicator_host():
        for app in apps:
            assert (await WebsocketCommunicator(app, "/").connect())[0]
        assert all(app.running for app in apps)
    assert all(app.cancelled and not app.running for app in apps)


@pytest.mark.anyio
async def test_a_test_may_end_without_disconnecting(echo: Any) -> None:
    # The ``echo`` fixture checks, after the plugin's host closed, that the consumer
    # ran its disconnect() (it was cancelled, and cleaned up).
    communicator = WebsocketCommunicator(echo, "/")
    assert (await communicator.connect())[0]
    await talk(communicator, "bye")


async def connect_in_a_host(*apps: Any, then_raise: Exception | None = None) -> None:
    """Connect a call-style communicator to each of ``apps`` in a host of its own."""
    async with open_communicator_host():
        for app in apps:
            assert (await WebsocketCommunicator(app, "/").connect())[0]
        if then_raise is not None:
            raise then_raise


@pytest.mark.anyio
async def test_an_unseen_app_exception_fails_the_end_of_the_host() -> None:
    with pytest.raises(KeyError, match="app failed"):
        await connect_in_a_host(fail_after_accept)


@pytest.mark.anyio
async def test_several_unseen_app_exceptions_come_in_a_group() -> None:
    with pytest.raises(ExceptionGroup) as info:
        await connect_in_a_host(fail_after_accept, fail_after_accept)
    assert [type(exc) for exc in info.value.exceptions] == [KeyError, KeyError]


@pytest.mark.anyio
async def test_an_unseen_app_exception_replaces_the_failure_it_caused() -> None:
    failure = AssertionError("the test failed because the app did")
    with pytest.raises(KeyError) as info:
        await connect_in_a_host(fail_after_accept, then_raise=failure)
    assert info.value.__context__ is failure


@pytest.mark.anyio
async def test_the_failure_of_the_block_is_not_wrapped() -> None:
    app = Watched()
    with pytest.raises(LookupError, match="from the test"):
        await connect_in_a_host(app, then_raise=LookupError("from the test"))
    assert app.cancelled


@pytest.mark.anyio
async def test_seen_and_dismissed_app_exceptions_are_not_raised_again() -> None:
    async with open_communicator_host():
        seen = WebsocketCommunicator(fail_after_accept, "/")
        await seen.connect()
        with pytest.raises(KeyError):
            await seen.wait()
        dismissed = WebsocketCommunicator(fail_after_accept, "/")
        await dismissed.connect()
        await dismissed.stop(exceptions=False)


@pytest.mark.anyio
async def test_stop_works_without_await_as_asgiref_s() -> None:
    app = Watched()
    async with open_communicator_host():
        communicator = WebsocketCommunicator(app, "/")
        await communicator.connect()
        communicator.stop()  # asgiref's stop() is synchronous: no "never awaited"
        assert not app.cancelled  # cancelled, not yet joined
    assert app.cancelled
    assert not app.running


@pytest.mark.anyio
async def test_a_cancelled_host_still_joins_the_apps() -> None:
    app = Watched()
    with anyio.CancelScope() as scope:
        async with open_communicator_host():
            await WebsocketCommunicator(app, "/").connect()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert app.cancelled
    assert not app.running


@pytest.mark.anyio
async def test_async_with_communicators_need_no_host() -> None:
    token = _current_host.set(None)  # as outside pytest
    try:
        async with WebsocketCommunicator(Watched(), "/") as communicator:
            with anyio.move_on_after(3):
                assert (await communicator.connect())[0]
    finally:
        _current_host.reset(token)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_call_style_without_a_host_says_what_to_do(backend: str) -> None:
    async def main() -> None:
        communicator = ApplicationCommunicator(fail_after_accept, {"type": "websocket"})
        with pytest.raises(RuntimeError, match="open_communicator_host") as info:
            await communicator.send_input({"type": "websocket.connect"})
        assert str(info.value).startswith(
            "ApplicationCommunicator is used without `async with` where no communicator "
            "host is running."
        )

    anyio.run(main, backend=backend)


@pytest.mark.anyio
async def test_a_closed_host_starts_nothing() -> None:
    async with open_communicator_host() as host:
        pass
    token = _current_host.set(host)
    try:
        with pytest.raises(RuntimeError, match="closed"):
            await WebsocketCommunicator(Watched(), "/").connect()
    finally:
        _current_host.reset(token)
    with pytest.raises(RuntimeError, match="already opened"):
        async with host:
            pass


# -- the pytest plugin ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_plugin_opened_a_host_for_this_test() -> None:
    assert _current_host.get() is not None


@pytest.mark.anyio
async def test_in_communicator_host_keeps_the_signature_and_the_result() -> None:
    plugin_host = _current_host.get()

    async def original(a: int, *, b: int) -> int:
        assert _current_host.get() not in (None, plugin_host)
        return a + b

    wrapped = in_communicator_host(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__wrapped__ is original  # type: ignore[attr-defined]
    assert await wrapped(1, b=2) == 3
    assert _current_host.get() is plugin_host


class DjangoCallStyle(SimpleTestCase):  # type: ignore[misc]  # Django is untyped here
    """Channels' docs test consumers in Django ``TestCase`` async methods."""

    async def test_call_style(self) -> None:
        communicator = HttpCommunicator(Hello.as_asgi(), "GET", "/")
        response = await communicator.get_response()
        assert response["body"] == b"hello"
        assert (await WebsocketCommunicator(Watched(), "/").connect())[0]  # left running


class UnittestCallStyle(unittest.IsolatedAsyncioTestCase):
    """An async ``unittest`` test method gets a host too (Django's TestCase alike)."""

    async def test_call_style(self) -> None:
        app = Watched()
        communicator = WebsocketCommunicator(app, "/")
        with anyio.move_on_after(3):
            assert await communicator.connect() == (True, None)
        await communicator.stop()
        assert app.cancelled
