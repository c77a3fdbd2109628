"""Run a Channels-style class consumer on the per-connection runtime.

The consumer reads client messages straight from ASGI ``receive`` (through the
connection's shared reader) and, when it has a layer channel, layer messages from a
reader task the connection owns. Dispatch stays one message at a time, as Channels
does it, through a gate that costs two attribute writes when nobody else is
dispatching. When the connection ends for any reason, the consumer's disconnect
handler runs (shielded, bounded) with the client's disconnect message or, if the
client never sent one, a synthesised one: groups are left and ``disconnect()`` runs
even after an error, a cancellation or a server shutdown. A layer handler busy at that
point is cancelled first, so the disconnect neither waits behind it nor runs beside it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from ._asgi import Message, Scope
from ._connection import Connection, logger
from .exceptions import InvalidMessage, MessageTooLarge, StopConsumer

__all__ = ["ConsumerConnection", "DispatchGate"]

Dispatch = Callable[[Message], Awaitable[None]]
LayerReceive = Callable[[], Awaitable[Message]]


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
        self._waiters: deque[anyio.Event] = deque()

    async def run(self, dispatch: Dispatch, message: Message) -> None:
        """Run ``dispatch(message)`` once the dispatches queued before it have run.

        Not a checkpoint when the gate is free. Cancelled while waiting, the call
        leaves the queue; cancelled after being handed the gate, it hands it on.
        """
        if self._busy:
            turn = anyio.Event()
            self._waiters.append(turn)
            try:
                await turn.wait()
            except BaseException:
                if turn in self._waiters:
                    self._waiters.remove(turn)
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


class ConsumerConnection(Connection):
    """A connection driven by a class consumer's ``dispatch``; tracks what was sent."""

    _accepted = False
    _closed = False
    _started = False
    _responded = False
    _disconnect_dispatched = False
    #: The code a failed WebSocket closes with: 1011, or a client error's (1007...).
    _failure_code = 1011
    _dispatch: Dispatch
    _gate: DispatchGate
    _layer_scope: anyio.CancelScope

    async def send(self, message: Message) -> None:
        """Pass ``message`` to the server, noting accept/close/response start."""
        kind = message["type"]
        if self._closed and hasattr(self, "_shutdown_code") and kind.startswith("websocket."):
            # The server closed the socket for shutdown: a layer event or a handler
            # still running may send, but nobody can receive it any more.
            if kind == "websocket.send":
                self._connections.sends_after_close += 1
                logger.debug("dropped a frame sent after the shutdown close of %r",
                             self.scope.get("path"))  # fmt: skip
            return
        if kind == "websocket.accept":
            self._accepted = True
        elif kind == "websocket.close" or kind == "websocket.http.response.start":
            self._closed = True
        elif kind == "http.response.start":
            self._started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self._responded = True
        await self._send(message)

    def may_skip(self, message: Message) -> bool:
        """Whether a consumer with no handler for ``message`` may let it pass.

        Only a disconnect that has nothing left to end may: one that follows a complete
        HTTP response or a close (or denial) the consumer sent, which servers and the
        communicators deliver, and the one the runtime synthesises at the end. A
        consumer that handles only ``http.request`` then ends quietly instead of
        failing, and one the client leaves mid-exchange still fails as in Channels.
        """
        return message["type"] in _DISCONNECTS and (self._responded or self._closed or self._ending)

    async def serve(
        self, dispatch: Dispatch, layer_receive: Callable[[], Awaitable[Message]] | None
    ) -> None:
        """Dispatch client (and layer) messages until the consumer stops."""
        self._dispatch = dispatch
        gate = self._gate = DispatchGate()
        self._layer_scope = anyio.CancelScope()
        if layer_receive is not None:
            self.start_soon(self._layer_loop, gate, layer_receive)
        try:
            while True:
                message = await self._receiver.receive()
                if message["type"] in _DISCONNECTS:
                    # Nothing can follow a disconnect: stop a busy layer handler (it
                    # would hold the gate), dispatch the disconnect, then end.
                    self._disconnect_dispatched = True
                    self._layer_scope.cancel()
                    await gate.run(dispatch, message)
                    return
                await gate.run(dispatch, message)
        except StopConsumer:
            return

    async def _layer_loop(
        self, gate: DispatchGate, receive: Callable[[], Awaitable[Message]]
    ) -> None:
        with self._layer_scope:
            try:
                while True:
                    await gate.run(self._dispatch, await receive())
            except StopConsumer:
                self.cancel()

    async def _finish(self) -> None:
        error = self._error
        if error is not None and not isinstance(error, StopConsumer):
            self._failure_code = _client_error_code(error, self.scope) or 1011
            if self._failure_code == 1011:
                self._log_error(error)
            else:  # the client's bad input: one line, no traceback, no error counted
                logger.warning("closing WebSocket %r with %d: %s",
                               self.scope.get("path"), self._failure_code, error)  # fmt: skip
            try:
                await self._send_failure()
            except Exception as exc:  # the transport may already be gone
                logger.debug("could not report the failure of %r: %r", self.scope.get("path"), exc)
        has_client = self.scope.get("type") in ("websocket", "http")
        if has_client and not self._disconnect_dispatched and hasattr(self, "_dispatch"):
            self._disconnect_dispatched = True
            # Through the gate, once a layer handler still running has been cancelled.
            self._layer_scope.cancel()
            try:
                await self._gate.run(self._dispatch, self._disconnect_message())
            except StopConsumer:
                pass
            except Exception:
                logger.exception("disconnect handler of %r failed", self.scope.get("path"))

    async def _send_failure(self) -> None:
        kind = self.scope.get("type")
        if kind == "websocket":
            if self._accepted and not self._closed:
                await self.send(
                    {"type": "websocket.close", "code": self._failure_code, "reason": ""}
                )
            elif not self._accepted and not self._closed:
                if "websocket.http.response" in (self.scope.get("extensions") or {}):
                    start = {"type": "websocket.http.response.start", "status": 500, "headers": []}
                    await self.send(start)
                    await self.send({"type": "websocket.http.response.body", "body": b""})
                else:
                    await self.send({"type": "websocket.close", "code": 1011, "reason": ""})
        elif kind == "http" and not self._started:
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            await self.send({"type": "http.response.start", "status": 500, "headers": headers})
            await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    def _disconnect_message(self) -> Message:
        """The client's disconnect message if it was read, else a synthesised one."""
        buffered = [m for m in self._receiver._buffer if m["type"] in _DISCONNECTS]
        if buffered:
            return buffered[-1]
        if self.scope.get("type") == "http":
            return {"type": "http.disconnect"}
        return {"type": "websocket.disconnect", "code": self._close_code_for_end()}

    def _close_code_for_end(self) -> int:
        if self._server_error is not None or self._failure_code != 1011:
            return self._failure_code
        return getattr(self, "_shutdown_code", 1006)

    def request_close(self, code: int) -> None:
        """Server shutdown: close the socket with ``code``, then end the consumer."""
        self._shutdown_code = code
        if self.scope.get("type") == "websocket" and self._accepted and not self._closed:
            self.start_soon(self._close_for_shutdown, code)
        else:
            self.cancel()

    async def _close_for_shutdown(self, code: int) -> None:
        await self.send({"type": "websocket.close", "code": code, "reason": ""})


def _client_error_code(error: Exception, scope: Scope) -> int | None:
    """The WebSocket close code for a client's bad input (as the native path), else None."""
    if scope.get("type") != "websocket":
        return None
    if isinstance(error, InvalidMessage):
        return error.close_code
    return 1009 if isinstance(error, MessageTooLarge) else None


_DISCONNECTS = frozenset({"websocket.disconnect", "http.disconnect"})
