"""The single reader of a connection's ASGI ``receive``.

The consumer awaits ASGI ``receive()`` directly, so a client frame costs no task or
stream hop. A watcher task (started by the connection, owned by its task group)
notices when the consumer has been away from ``receive()`` for ``watch_after``
seconds, busy with something else; only then does it read on the consumer's behalf,
buffering frames (bounded) so that a disconnect is seen promptly and the busy
handler can be cancelled. It ends while the consumer waits in ``receive()`` and is
started again when the consumer leaves it, so an idle connection keeps no watcher.
``receive()`` is never called concurrently and a pending
server ``receive()`` is never abandoned while the connection lives, so no frame is
lost or reordered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio
import anyio.lowlevel

from ._asgi import Message, Receive

__all__ = ["Receiver"]

_END_TYPES = frozenset({"websocket.disconnect", "http.disconnect"})


class Receiver:
    """Share one ASGI ``receive`` between the consumer and the disconnect watcher."""

    __slots__ = (
        "_arrived",
        "_buffer",
        "_calls",
        "_in_call",
        "_max_buffered",
        "_receive",
        "_restart",
        "_room",
        "_watch_after",
        "_watch_scope",
        "_watch_stopped",
        "_watcher_reading",
        "_watching",
        "end_message",
        "watcher_wakeups",
    )

    def __init__(self, receive: Receive, *, watch_after: float, max_buffered: int) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        self._receive = receive
        self._watch_after = watch_after
        self._max_buffered = max_buffered
        # Made when the watcher first reads for the consumer: most connections never
        # need one, and an empty deque is ~600 bytes.
        self._buffer: deque[Message] | None = None
        self._in_call = False
        self._watcher_reading = False
        self._watching = False
        self._watch_scope: anyio.CancelScope | None = None
        self._watch_stopped = False
        self._restart: Callable[[], None] | None = None
        self._calls = 0
        self._arrived: anyio.Event | None = None
        self._room: anyio.Event | None = None
        #: The client's disconnect message once either reader has read it; nothing is
        #: read after it.
        self.end_message: Message | None = None
        #: How often the watcher looked; bounded by time, not by traffic.
        self.watcher_wakeups = 0

    async def receive(self) -> Message:
        """Return the next ASGI message from the client.

        A checkpoint. Cancelling it loses nothing: a message the watcher already read
        stays buffered for the next call.

        Raises:
            RuntimeError: called while another ``receive()`` is pending.
        """
        if self._in_call:
            raise RuntimeError("receive() is already being awaited on this connection")
        if self._buffer:
            await anyio.lowlevel.checkpoint()
            return self._take()
        self._in_call = True
        try:
            if self._watcher_reading:
                arrived = self._arrived = anyio.Event()
                try:
                    await arrived.wait()
                finally:
                    self._arrived = None
                return self._take()
            message = await self._receive()
            if message["type"] in _END_TYPES:
                self.end_message = message
            return message
        finally:
            self._in_call = False
            self._calls += 1
            if self._restart is not None and not self.ended and self.claim_watch():
                self._restart()

    @property
    def ended(self) -> bool:
        """Whether the client's disconnect message has been read."""
        return self.end_message is not None

    def restart_watcher_with(self, restart: Callable[[], None] | None) -> None:
        """Set how a watcher is started again; ``None`` to start no more.

        :meth:`watch` returns when it finds the consumer waiting in ``receive()`` (an
        idle connection then keeps no watcher task and nothing parked), and
        ``receive()`` calls ``restart()`` - which must start :meth:`watch` in a task -
        when the consumer leaves it with no watcher running. The watcher lives at
        least ``watch_after`` seconds each time, so a busy connection restarts it at
        most that often. The connection sets it when it starts and clears it when it
        ends (the callback refers to the connection: no cycle outlives it).
        """
        self._restart = restart

    def claim_watch(self) -> bool:
        """Note that a watcher is about to start; ``False`` if one runs or is starting.

        Call it before starting :meth:`watch` in a task: until the task runs, a
        ``receive()`` that returns must not start a second one.
        """
        if self._watching:
            return False
        self._watching = True
        return True

    def _take(self) -> Message:
        buffer = self._buffer
        if buffer is None:  # only called with a message buffered
            raise RuntimeError("no message buffered")
        message = buffer.popleft()
        if self._room is not None:
            self._room.set()
            self._room = None
        return message

    async def watch(self, on_disconnect: Callable[[], None]) -> None:
        """Read for a busy consumer; call ``on_disconnect`` if the client leaves meanwhile.

        Runs until a disconnect message has been read, :meth:`stop_watching` is called
        or the task is cancelled, or until it finds the consumer in ``receive()`` (see
        :meth:`restart_watcher_with`).
        """
        self._watching = True
        try:
            # Shielded: it is stopped through this scope only (stop_watching), never by
            # cancelling the connection, so it always ends without an exception.
            with anyio.CancelScope(shield=True) as self._watch_scope:
                if self._watch_stopped:  # between this task's start and its first step
                    return
                await self._watch(on_disconnect)
        finally:
            self._watching = False
            self._watch_scope = None

    def stop_watching(self) -> None:
        """End a running :meth:`watch` (it returns; nothing it read is lost). Not a checkpoint.

        Its task then ends without an exception: cancelling the task from outside would
        leave the cancellation and its traceback - a reference cycle - for the
        collector, once per connection.
        """
        self._watch_stopped = True
        if self._watch_scope is not None:
            self._watch_scope.cancel()

    async def _watch(self, on_disconnect: Callable[[], None]) -> None:
        fresh = True
        while not self.ended:
            self.watcher_wakeups += 1
            if self._in_call and not fresh:
                # receive() starts a watcher again once the consumer leaves. Not on the
                # first pass: a watcher lives at least watch_after, or a consumer back
                # in receive() before it ran would restart it for every frame.
                return
            fresh = False
            if self._buffer is not None and len(self._buffer) >= self._max_buffered:
                room = self._room = anyio.Event()
                await room.wait()
                continue
            # Wake at most once per ``watch_after`` however many frames flow: even if
            # the consumer is back in receive() by now, wait before looking again.
            calls = self._calls
            await anyio.sleep(self._watch_after)
            # Read only if the consumer stayed away from receive() the whole time.
            while not (self._in_call or self._calls != calls or self.ended):
                if self._buffer is not None and len(self._buffer) >= self._max_buffered:
                    break
                await self._read_for_consumer(on_disconnect)

    async def _read_for_consumer(self, on_disconnect: Callable[[], None]) -> None:
        self._watcher_reading = True
        try:
            message = await self._receive()
        finally:
            self._watcher_reading = False
        if self._buffer is None:
            self._buffer = deque()
        self._buffer.append(message)
        if message["type"] in _END_TYPES:
            self.end_message = message
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None
        elif self.end_message is not None:
            on_disconnect()
