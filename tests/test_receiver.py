"""The shared reader of ASGI ``receive``: direct path, busy consumer, disconnect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from achannels._asgi import Message
from achannels._receiver import Receiver

from .helpers import wait_until

pytestmark = pytest.mark.anyio


class FakeServer:
    """An ASGI ``receive`` fed by the test; refuses concurrent calls."""

    def __init__(self) -> None:
        self.inbox: MemoryObjectSendStream[Message]
        self._outbox: MemoryObjectReceiveStream[Message]
        self.inbox, self._outbox = anyio.create_memory_object_stream[Message](100)
        self.pending = 0
        self.calls = 0

    async def receive(self) -> Message:
        assert self.pending == 0, "receive() called concurrently"
        self.pending += 1
        self.calls += 1
        try:
            return await self._outbox.receive()
        finally:
            self.pending -= 1

    def close(self) -> None:
        self.inbox.close()
        self._outbox.close()


def start_watcher(
    receiver: Receiver, tg: anyio.abc.TaskGroup, on_disconnect: Callable[[], None]
) -> None:
    """Start the watcher as a connection does: again whenever the consumer leaves receive()."""

    def restart() -> None:
        tg.start_soon(receiver.watch, on_disconnect)

    receiver.restart_watcher_with(restart)
    assert receiver.claim_watch()
    restart()


def stop(receiver: Receiver, tg: anyio.abc.TaskGroup) -> None:
    """End the test as a connection ends: the watcher is stopped, not cancelled."""
    receiver.restart_watcher_with(None)
    receiver.stop_watching()
    tg.cancel_scope.cancel()


def frame(text: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": text}


async def test_direct_receive_keeps_order_and_never_wakes_the_watcher() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=60, max_buffered=4)
    left: list[int] = []
    async with anyio.create_task_group() as tg:
        start_watcher(receiver, tg, lambda: left.append(1))
        for n in range(50):
            server.inbox.send_nowait(frame(str(n)))
        received = [(await receiver.receive())["text"] for _ in range(50)]
        stop(receiver, tg)
    assert received == [str(n) for n in range(50)]
    assert server.calls == 50
    assert left == []
    server.close()


async def test_the_watcher_does_not_wake_per_frame() -> None:
    """A steady flow of frames must not wake the watcher each time (it costs a task switch)."""
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=60, max_buffered=4)
    async with anyio.create_task_group() as tg:
        start_watcher(receiver, tg, lambda: None)
        await anyio.wait_all_tasks_blocked()
        for n in range(1000):
            server.inbox.send_nowait(frame(str(n)))
            await receiver.receive()
            await anyio.lowlevel.checkpoint()  # let the watcher run if it was woken
        stop(receiver, tg)
    assert receiver.watcher_wakeups <= 2
    server.close()


async def test_busy_consumer_is_told_when_the_client_leaves() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=0.01, max_buffered=4)
    gone = anyio.Event()
    async with anyio.create_task_group() as tg:
        start_watcher(receiver, tg, gone.set)
        server.inbox.send_nowait(frame("a"))
        server.inbox.send_nowait({"type": "websocket.disconnect", "code": 1001})
        with anyio.fail_after(5):
            await gone.wait()
        assert receiver.ended
        # Nothing the watcher read is lost: the consumer still gets both, in order.
        assert (await receiver.receive())["text"] == "a"
        assert (await receiver.receive())["type"] == "websocket.disconnect"
    server.close()


async def test_frames_read_for_a_busy_consumer_arrive_in_order() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=0.01, max_buffered=3)
    async with anyio.create_task_group() as tg:
        start_watcher(receiver, tg, tg.cancel_scope.cancel)
        for n in range(10):
            server.inbox.send_nowait(frame(str(n)))
        await wait_until(lambda: len(receiver._buffer or ()) == 3)  # full: the watcher stops
        assert server.calls == 3, "reading pauses when the buffer is full"
        received = [(await receiver.receive())["text"] for _ in range(10)]
        stop(receiver, tg)
    assert received == [str(n) for n in range(10)]
    server.close()


async def test_a_cancelled_receive_loses_nothing() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=0.01, max_buffered=4)
    async with anyio.create_task_group() as tg:
        start_watcher(receiver, tg, lambda: None)
        with anyio.move_on_after(0.05):
            await receiver.receive()
        # Let the watcher take over reading, then cancel a consumer waiting on it.
        await wait_until(lambda: receiver._watcher_reading)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await receiver.receive()
        server.inbox.send_nowait(frame("kept"))
        with anyio.fail_after(5):
            assert (await receiver.receive())["text"] == "kept"
        stop(receiver, tg)
    server.close()


async def test_concurrent_receive_is_refused() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=60, max_buffered=4)
    async with anyio.create_task_group() as tg:
        tg.start_soon(receiver.receive)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="already being awaited"):
            await receiver.receive()
        stop(receiver, tg)
    server.close()


def test_buffer_must_hold_a_frame() -> None:
    server = FakeServer()
    with pytest.raises(ValueError, match="at least 1"):
        Receiver(server.receive, watch_after=1, max_buffered=0)
    server.close()


async def test_with_a_restart_hook_an_idle_connection_keeps_no_watcher() -> None:
    """The watcher ends while the consumer waits; leaving receive() starts it again."""
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=0.01, max_buffered=4)
    gone = anyio.Event()
    runs: list[str] = []

    async def watcher() -> None:
        runs.append("start")
        await receiver.watch(gone.set)
        runs.append("end")

    async with anyio.create_task_group() as tg:

        def restart() -> None:
            tg.start_soon(watcher)

        receiver.restart_watcher_with(restart)
        async with anyio.create_task_group() as consumer:
            consumer.start_soon(receiver.receive)  # the consumer waits for a frame
            await anyio.wait_all_tasks_blocked()
            assert receiver.claim_watch()
            assert not receiver.claim_watch()  # one watcher at a time
            tg.start_soon(watcher)
            await wait_until(lambda: runs == ["start", "end"])  # so the watcher ended
            server.inbox.send_nowait(frame("a"))
        # Leaving receive() restarted it, once.
        await wait_until(lambda: runs == ["start", "end", "start"])
        # The consumer is now busy elsewhere: the restarted watcher notices a departure.
        server.inbox.send_nowait({"type": "websocket.disconnect", "code": 1001})
        with anyio.fail_after(5):
            await gone.wait()
        receiver.restart_watcher_with(None)
    assert receiver.ended
    server.close()


async def test_a_restarted_watcher_lives_at_least_watch_after() -> None:
    """Frames back to back restart the watcher about once per watch_after, not per frame."""
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=60, max_buffered=4)
    starts: list[int] = []

    async with anyio.create_task_group() as tg:

        def restart() -> None:
            starts.append(1)
            tg.start_soon(receiver.watch, lambda: None)

        async def consumer() -> None:
            for _ in range(10):
                await receiver.receive()  # straight back in receive(), as an echo does

        receiver.restart_watcher_with(restart)
        async with anyio.create_task_group() as consuming:
            consuming.start_soon(consumer)
            for n in range(10):
                await anyio.wait_all_tasks_blocked()  # the consumer waits in receive()
                server.inbox.send_nowait(frame(str(n)))
        assert len(starts) == 1
        stop(receiver, tg)
    server.close()


async def test_stop_watching_ends_the_watcher_without_an_error() -> None:
    server = FakeServer()
    receiver = Receiver(server.receive, watch_after=0.001, max_buffered=4)
    with anyio.fail_after(5):  # no outside cancellation: the watcher task must return
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver.watch, lambda: None)
            await wait_until(lambda: server.pending == 1)  # reading for the consumer
            receiver.stop_watching()
        fresh = Receiver(server.receive, watch_after=0.001, max_buffered=4)
        async with anyio.create_task_group() as tg:
            tg.start_soon(fresh.watch, lambda: None)
            fresh.stop_watching()  # before the task's first step
    assert server.calls == 1
    server.inbox.send_nowait(frame("kept"))
    assert (await receiver.receive())["text"] == "kept"  # nothing read was lost
    server.close()
