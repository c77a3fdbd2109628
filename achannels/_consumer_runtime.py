"""Drive a Channels-style class consumer on the per-connection runtime.

The consumer runs on the very connection objects function consumers get: it reads
client messages through the connection's ``receive_message()`` (straight from ASGI
``receive``, through the shared reader) and sends through ``send_message()``, so the
WebSocket state machine, the size limit and the error-to-close-code table apply to
both styles alike. When it has a layer channel, layer messages come from a reader
task the connection owns. Dispatch stays one message at a time, as Channels does it,
through a gate that costs two attribute writes when nobody else is dispatching.
When the connection ends for any reason, the consumer's disconnect handler runs
(shielded, bounded, as a connection cleanup - before the close frame goes out) with
the client's disconnect message or, if the client never sent one, a synthesised
one: groups are left and ``disconnect()`` runs even after an error, a cancellation
or a server shutdown. A layer handler busy at that point is cancelled first, so the
disconnect neither waits behind it nor runs beside it.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from ._asgi import Message
from ._connection import Connection
from .exceptions import StopConsumer

__all__ = ["ConsumerDriver", "DispatchGate", "may_skip"]

Dispatch = Callable[[Message], Awaitable[None]]


class DispatchGate:
    """Let one dispatch run at a time; hand the gate over first come, first served.

    Releasing the gate with a dispatch waiting hands it straight to the longest
    waiter: the gate never goes free in between, so the releasing task cannot take it
    back before the waiter has run, even when its next ``receive()`` returns without
    yielding (hypercorn's asyncio worker does that for queued frames). With two
    sources, client frames and layer events, they alternate whenever both have
    something to dispatch, and a layer event waits at most behind the message being
    handled.
    """

    __slots__ = ("_busy", "_waiters")

    def __init__(self) -> None:
        self._busy = False
        # Made when a dispatch first has to wait: an empty deque is ~600 bytes, and
        # most connections never dispatch two things at once.
        self._waiters: deque[anyio.Event] | None = None

    async def run(self, dispatch: Dispatch, message: Message) -> None:
        """Run ``dispatch(message)`` once the dispatches queued before it have run.

        Not a checkpoint when the gate is free. Cancelled while waiting, the call
        leaves the queue; cancelled after being handed the gate, it hands it on.
        """
        if self._busy:
            turn = anyio.Event()
            waiters = self._waiters
            if waiters is None:
                waiters = self._waiters = deque()
            waiters.append(turn)
            try:
                await turn.wait()
            except BaseException:
                if turn in waiters:
                    waiters.remove(turn)
                else:
                    self._release()  # pass on the gate we were handed
                raise
        else:
            self._busy = True
        try:
            await dispatch(message)
        finally:
            self._release()

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # the gate stays busy: it is the waiter's now
        else:
            self._busy = False


class ConsumerDriver:
    """Feed a class consumer's ``dispatch`` from a connection, one message at a time.

    The connection is the same object function consumers get (a ``WebSocket``, a
    ``Request``, or a plain ``Connection`` for a layer channel's scope): its state
    machine, limits and ending apply to class consumers unchanged. The driver adds
    only what Channels' dispatch model needs: the gate, the layer reader, and the
    disconnect handler run whatever ended the connection.
    """

    __slots__ = ("_connection", "_disconnect_dispatched", "_dispatch", "_gate")

    def __init__(self, connection: Connection, dispatch: Dispatch) -> None:
        self._connection = connection
        self._dispatch = dispatch
        self._gate = DispatchGate()
        self._disconnect_dispatched = False

    @property
    def connection(self) -> Connection:
        """The connection this driver feeds the consumer from."""
        return self._connection

    async def serve(self) -> None:
        """Dispatch client (and layer) messages until the consumer stops.

        Layer messages come if the connection has a channel (``adopt_channel``).
        """
        connection = self._connection
        if connection.channel_name is not None:
            connection.read_channel(self._deliver_layer_message)
        if connection.scope.get("type") in ("websocket", "http"):
            connection.add_cleanup(self._dispatch_last_disconnect)
        gate, dispatch = self._gate, self._dispatch
        try:
            while True:
                message = await connection.receive_message()
                if message["type"] in _DISCONNECTS:
                    # Nothing can follow a disconnect: stop a busy layer handler (it
                    # would hold the gate), dispatch the disconnect, then end.
                    self._disconnect_dispatched = True
                    connection.stop_reading()
                    await gate.run(dispatch, message)
                    return
                await gate.run(dispatch, message)
        except StopConsumer:
            return

    async def _deliver_layer_message(self, message: dict[str, Any]) -> None:
        try:
            await self._gate.run(self._dispatch, message)
        except StopConsumer:
            self._connection.stop_reading()
            self._connection.cancel()

    async def _dispatch_last_disconnect(self) -> None:
        """A cleanup: dispatch the disconnect the consumer has not seen yet, if any.

        Through the gate, once a layer handler still running has been cancelled.
        """
        if self._disconnect_dispatched:
            return
        self._disconnect_dispatched = True
        self._connection.stop_reading()
        with contextlib.suppress(StopConsumer):
            await self._gate.run(self._dispatch, self._connection.disconnect_message())


def may_skip(connection: Connection, message: Message) -> bool:
    """Whether a consumer with no handler for ``message`` may let it pass.

    Only a disconnect that has nothing left to end may: one that follows a complete
    HTTP response or a close (or denial) the consumer sent, which servers and the
    communicators deliver, and the one the runtime synthesises at the end. A consumer
    that handles only ``http.request`` then ends quietly instead of failing, and one
    the client leaves mid-exchange still fails as in Channels.
    """
    return message["type"] in _DISCONNECTS and (connection.exchange_over or connection.ending)


_DISCONNECTS = frozenset({"websocket.disconnect", "http.disconnect"})
