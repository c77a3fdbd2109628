"""Tests for ``ApplicationCommunicator``: the task group, errors, timeouts."""

from __future__ import annotations

import anyio
import pytest

from achannels._asgi import Receive, Scope, Send, raise_app_errors
from achannels.testing import ApplicationCommunicator

SCOPE: Scope = {"type": "test"}


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Send back every message until one has type ``stop``."""
    while True:
        message = await receive()
        if message["type"] == "stop":
            return
        await send({"type": "echo", "message": message})


class Sleeper:
    """An app that sends ``started`` and then waits forever, noting how it ended."""

    def __init__(self) -> None:
        self.cancelled = False
        self.finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "started"})
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.finished = True


async def fail_on_first_message(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise ValueError("boom")


async def say_bye_and_fail(scope: Scope, receive: Receive, send: Send) -> None:
    # No checkpoint between the send and the raise: once the test has the message,
    # the app has failed.
    await send({"type": "bye"})
    raise ValueError("boom")


@pytest.mark.anyio
async def test_round_trip_and_wait() -> None:
    async with ApplicationCommunicator(echo, SCOPE) as comm:
        await comm.send_input({"type": "hello"})
        assert await comm.receive_output() == {"type": "echo", "message": {"type": "hello"}}
        await comm.send_input({"type": "stop"})
        await comm.wait()


@pytest.mark.anyio
async def test_messages_sent_before_the_app_reads_are_queued_in_order() -> None:
    async with ApplicationCommunicator(echo, SCOPE) as comm:
        for n in range(3):
            await comm.send_input({"type": "m", "n": n})
        for n in range(3):
            assert (await comm.receive_output())["message"]["n"] == n


@pytest.mark.anyio
async def test_the_app_runs_with_raise_app_errors_set() -> None:
    seen: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(raise_app_errors.get())

    async with ApplicationCommunicator(app, SCOPE) as comm:
        await comm.wait()
    assert seen == [True]
    assert raise_app_errors.get() is False  # the test's own context is untouched


@pytest.mark.anyio
async def test_leaving_the_block_cancels_a_running_app() -> None:
    app = Sleeper()
    async with ApplicationCommunicator(app, SCOPE) as comm:
        assert await comm.receive_output() == {"type": "started"}
        assert not app.finished
    assert app.cancelled
    assert app.finished


@pytest.mark.anyio
async def test_receive_output_timeout_cancels_the_app() -> None:
    app = Sleeper()
    async with ApplicationCommunicator(app, SCOPE) as comm:
        await comm.receive_output()
        with pytest.raises(TimeoutError):
            await comm.receive_output(timeout=0.01)
        assert app.cancelled


@pytest.mark.anyio
async def test_receive_output_after_the_app_returned_raises_timeout_at_once() -> None:
    async with ApplicationCommunicator(echo, SCOPE) as comm:
        await comm.send_input({"type": "stop"})
        with pytest.raises(TimeoutError):
            await comm.receive_output(timeout=None)


@pytest.mark.anyio
async def test_receive_nothing() -> None:
    async with ApplicationCommunicator(echo, SCOPE) as comm:
        assert await comm.receive_nothing(timeout=0.01)
        await comm.send_input({"type": "ping"})
        assert not await comm.receive_nothing()
        # The message is still there for receive_output.
        assert (await comm.receive_output())["message"] == {"type": "ping"}
        await comm.send_input({"type": "stop"})
        assert await comm.receive_nothing(timeout=None)  # the app returned: nothing can come


@pytest.mark.anyio
async def test_app_exception_surfaces_from_receive_output() -> None:
    async with ApplicationCommunicator(fail_on_first_message, SCOPE) as comm:
        await comm.send_input({"type": "go"})
        with pytest.raises(ValueError, match="boom"):
            await comm.receive_output()


@pytest.mark.anyio
async def test_app_exception_surfaces_from_wait() -> None:
    async with ApplicationCommunicator(fail_on_first_message, SCOPE) as comm:
        await comm.send_input({"type": "go"})
        with pytest.raises(ValueError, match="boom"):
            await comm.wait()


@pytest.mark.anyio
async def test_app_exception_surfaces_at_block_exit() -> None:
    with pytest.raises(ValueError, match="boom"):
        async with ApplicationCommunicator(say_bye_and_fail, SCOPE) as comm:
            assert await comm.receive_output() == {"type": "bye"}


@pytest.mark.anyio
async def test_an_unseen_app_exception_replaces_the_failure_of_the_block() -> None:
    async def failing_test() -> None:
        async with ApplicationCommunicator(say_bye_and_fail, SCOPE) as comm:
            await comm.receive_output()
            raise AssertionError("the test failed because the app did")

    with pytest.raises(ValueError, match="boom") as info:
        await failing_test()
    assert isinstance(info.value.__context__, AssertionError)


@pytest.mark.anyio
async def test_app_exception_is_not_raised_again_at_block_exit() -> None:
    async with ApplicationCommunicator(fail_on_first_message, SCOPE) as comm:
        await comm.send_input({"type": "go"})
        with pytest.raises(ValueError, match="boom"):
            await comm.wait()
    # Leaving the block did not raise it a second time.


@pytest.mark.anyio
async def test_a_single_exception_group_is_unwrapped() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(fail_on_first_message, scope, receive, send)

    async with ApplicationCommunicator(app, SCOPE) as comm:
        await comm.send_input({"type": "go"})
        with pytest.raises(ValueError, match="boom"):
            await comm.wait()


@pytest.mark.anyio
async def test_a_test_failure_is_not_wrapped_in_a_group() -> None:
    async def failing_test() -> None:
        async with ApplicationCommunicator(Sleeper(), SCOPE) as comm:
            await comm.receive_output()
            raise KeyError("from the test")

    with pytest.raises(KeyError, match="from the test"):
        await failing_test()


@pytest.mark.anyio
async def test_wait_timeout_cancels_the_app() -> None:
    app = Sleeper()
    async with ApplicationCommunicator(app, SCOPE) as comm:
        with pytest.raises(TimeoutError):
            await comm.wait(timeout=0.01)
        assert app.cancelled


@pytest.mark.anyio
async def test_call_style_wait_and_stop() -> None:
    comm = ApplicationCommunicator(echo, SCOPE)
    await comm.send_input({"type": "stop"})
    await comm.wait()

    app = Sleeper()
    comm = ApplicationCommunicator(app, SCOPE)
    assert await comm.receive_output() == {"type": "started"}
    await comm.stop()
    assert app.cancelled


@pytest.mark.anyio
async def test_call_style_app_exception() -> None:
    comm = ApplicationCommunicator(fail_on_first_message, SCOPE)
    await comm.send_input({"type": "go"})
    with pytest.raises(ValueError, match="boom"):
        await comm.wait()


@pytest.mark.anyio
async def test_stop_without_exceptions_and_before_start() -> None:
    comm = ApplicationCommunicator(fail_on_first_message, SCOPE)
    await comm.stop()  # never started: nothing to do

    comm = ApplicationCommunicator(say_bye_and_fail, SCOPE)
    assert await comm.receive_output() == {"type": "bye"}
    await comm.stop(exceptions=False)

    comm = ApplicationCommunicator(say_bye_and_fail, SCOPE)
    assert await comm.receive_output() == {"type": "bye"}
    with pytest.raises(ValueError, match="boom"):
        await comm.stop()


@pytest.mark.anyio
async def test_a_communicator_is_entered_once() -> None:
    comm = ApplicationCommunicator(echo, SCOPE)
    async with comm:
        pass
    with pytest.raises(RuntimeError):
        async with comm:
            pass
