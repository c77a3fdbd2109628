"""The WebSocket connection object handed to ``@router.websocket`` consumers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._asgi import Message, Receive, Scope, Send
from ._connection import Connection, Connections, ConnectionSettings, logger
from ._outcome import MAX_REASON_BYTES, Blame, Outcome
from ._receiver import Receiver
from ._wsstate import WebSocketState, WebSocketStateMachine
from .exceptions import InvalidMessage, MessageTooLarge, WebSocketDisconnect

if TYPE_CHECKING:
    from .layers import ChannelLayer

__all__ = ["WebSocket"]

_DENIAL_EXTENSION = "websocket.http.response"
_ENDED_HERE = frozenset({WebSocketState.CLOSED, WebSocketState.DENIED})
T = TypeVar("T")
HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


def _encode_headers(headers: HeaderPairs) -> list[tuple[bytes, bytes]]:
    return [
        (
            (name.encode("latin-1") if isinstance(name, str) else name).lower(),
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in headers
    ]


class _Frames(AsyncIterator[T]):
    """Frames until the client leaves or the socket is closed.

    A plain iterator rather than an async generator: abandoning it (a cancelled
    ``async for``) needs no finalisation, so nothing warns under trio. ``__anext__``
    returns the connection's coroutine instead of awaiting it: a consumer waiting in
    ``async for`` keeps one coroutine frame less alive.
    """

    __slots__ = ("_convert", "_ws")

    def __init__(self, ws: WebSocket, convert: Callable[[str | bytes], T]) -> None:
        self._ws = ws
        self._convert = convert

    def __anext__(self) -> Awaitable[T]:
        return self._ws._next_frame(self._convert)


class WebSocket(Connection):
    """One WebSocket connection: accept, send, receive, close, and owned tasks.

    Sending and receiving are checkpoints. One task receives at a time; any number
    of tasks may send. Tasks started with :meth:`start_soon` belong to the connection
    and are cancelled when it ends.
    """

    #: The largest frame accepted from the client (characters or bytes); 1 MiB.
    max_message_size: int = 1 << 20

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        connections: Connections,
        settings: ConnectionSettings,
        layer: ChannelLayer | None = None,
        path_params: dict[str, Any] | None = None,
        max_message_size: int | None = None,
    ) -> None:
        super().__init__(
            scope,
            receive,
            send,
            connections=connections,
            settings=settings,
            layer=layer,
            path_params=path_params,
        )
        self._state = WebSocketStateMachine()
        if max_message_size is not None:
            self.max_message_size = max_message_size
        #: What the runtime sends when the consumer has ended (see ``_settle``).
        self._farewell: list[Message] = []

    # -- the handshake ----------------------------------------------------------------

    @property
    def state(self) -> WebSocketState:
        """Where the connection stands (CONNECTING, OPEN, CLOSED, DENIED, DISCONNECTED)."""
        return self._state.state

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        offered: list[str] = self.scope.get("subprotocols") or []
        return offered

    @property
    def close_code(self) -> int | None:
        """The close code, once either side closed (``None`` while open)."""
        return self._state.close_code

    @property
    def close_reason(self) -> str:
        """The close reason, ``""`` when none was given."""
        return self._state.close_reason

    async def accept(self, subprotocol: str | None = None, headers: HeaderPairs = ()) -> None:
        """Accept the connection, optionally choosing one of the offered subprotocols.

        Raises:
            ValueError: ``subprotocol`` is not one the client offered.
            WebSocketStateError: the connection was already accepted, closed or denied.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client {self.subprotocols!r}"
            )
        self._state.accept()
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = _encode_headers(headers)
        await self._send(message)

    async def deny(
        self, status: int = 403, *, headers: HeaderPairs = (), body: bytes = b""
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Uses the ASGI ``websocket.http.response`` extension where the server offers it;
        elsewhere the server answers 403 to a plain close, whatever ``status`` says.
        """
        if _DENIAL_EXTENSION not in (self.scope.get("extensions") or {}):
            if self._state.state is not WebSocketState.CONNECTING:
                self._state.deny()  # raises: only a handshake in progress can be denied
            await self.close()
            return
        self._state.deny()
        await self._send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": _encode_headers(headers),
            }
        )
        await self._send({"type": "websocket.http.response.body", "body": body})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; closing twice, or after the client left, does nothing.

        Before :meth:`accept` this rejects the handshake (the server answers 403).

        Raises:
            ValueError: ``reason`` is over the 123 UTF-8 bytes a close frame can carry.
        """
        if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
            raise ValueError(f"close reason over {MAX_REASON_BYTES} UTF-8 bytes: {reason!r}")
        if self._state.close(code, reason):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    # -- sending ----------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a text frame.

        Raises:
            WebSocketStateError: before :meth:`accept`.
            anyio.ClosedResourceError: after :meth:`close`.
            WebSocketDisconnect: after the client left.
        """
        if self._state.state is not WebSocketState.OPEN:
            return self._not_sendable()
        await self._send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame; raises like :meth:`send_text`."""
        if self._state.state is not WebSocketState.OPEN:
            return self._not_sendable()
        await self._send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` encoded as compact JSON in a text frame."""
        await self.send_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    # -- receiving --------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """Return the next frame from the client: ``str`` for text, ``bytes`` for binary.

        Raises:
            WebSocketDisconnect: the client left (its code and reason attached).
            MessageTooLarge: the frame is over :attr:`max_message_size`.
            WebSocketStateError: before :meth:`accept`.
        """
        # Each receive_* awaits the shared reader itself, not receive(): a consumer
        # waiting for its next frame keeps one coroutine frame less alive per
        # connection, and the hot path makes one call less.
        return self._unpack(await self._open_receiver().receive())

    async def receive_text(self) -> str:
        """Return the next text frame; a binary frame raises :class:`InvalidMessage` (1003)."""
        return _text(self._unpack(await self._open_receiver().receive()))

    async def receive_bytes(self) -> bytes:
        """Return the next binary frame; a text frame raises :class:`InvalidMessage` (1003)."""
        return _binary(self._unpack(await self._open_receiver().receive()))

    async def receive_json(self) -> Any:
        """Return the next text frame decoded as JSON.

        Raises:
            InvalidMessage: the frame is not valid JSON (close code 1007) or is binary (1003).
        """
        return _json(self._unpack(await self._open_receiver().receive()))

    def _open_receiver(self) -> Receiver:
        if self._state.state is not WebSocketState.OPEN:
            raise self._state.not_open("receive")
        return self._receiver

    def _unpack(self, message: Message) -> str | bytes:
        """What :meth:`receive` returns for the ASGI ``message`` it read."""
        kind = message["type"]
        if kind == "websocket.receive":
            return self._frame_data(message)
        if kind == "websocket.disconnect":
            raise self._record_disconnect(message)
        raise InvalidMessage(f"unexpected ASGI message {kind!r}", close_code=1011)

    def __aiter__(self) -> WebSocket:
        """Iterate over frames until the client leaves or the connection is closed."""
        return self

    def __anext__(self) -> Awaitable[str | bytes]:
        """Return the next frame; end the iteration when the client left or on close."""
        # The hot path of ``async for message in ws``: no iterator object in between.
        return self._next_frame(_as_is)

    def iter_text(self) -> AsyncIterator[str]:
        """Iterate over text frames until the client leaves or the connection is closed."""
        return _Frames(self, _text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Iterate over binary frames until the client leaves or the connection is closed."""
        return _Frames(self, _binary)

    def iter_json(self) -> AsyncIterator[Any]:
        """Iterate over JSON text frames until the client leaves or the connection is closed."""
        return _Frames(self, _json)

    async def _next_frame(self, convert: Callable[[str | bytes], T]) -> T:
        """The next frame, converted, for ``async for``: which ends when the client left."""
        try:
            data = self._unpack(await self._open_receiver().receive())
        except (WebSocketDisconnect, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        return convert(data)

    # -- the ASGI message path, shared with class consumers -----------------------------

    async def receive_message(self) -> Message:
        """Return the next ASGI message from the client, checked and recorded.

        A checkpoint. The connection's state follows a disconnect.

        Raises:
            MessageTooLarge: a frame is over :attr:`max_message_size`.
        """
        message = await self._receiver.receive()
        kind = message["type"]
        if kind == "websocket.receive":
            self._frame_data(message)
        elif kind == "websocket.disconnect":
            self._record_disconnect(message)
        return message

    def _frame_data(self, message: Message) -> str | bytes:
        """A ``websocket.receive`` message's text, else its bytes, checked against the limit.

        Raises:
            MessageTooLarge: the frame is over :attr:`max_message_size`.
        """
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > self.max_message_size:
            limit = self.max_message_size
            raise MessageTooLarge(f"a {len(data)}-byte frame is over the {limit}-byte limit")
        return data

    def _record_disconnect(self, message: Message) -> WebSocketDisconnect:
        """Record the client's disconnect message; return the exception that reports it."""
        code, reason = message.get("code", 1005) or 1005, message.get("reason") or ""
        return self._state.disconnected(code, reason)

    async def send_message(self, message: Message) -> None:
        """Send an ASGI ``websocket.*`` message, moving the state machine as it says.

        What a class consumer's ``send`` calls. A second close does nothing; a frame
        after the server closed the socket (shutdown, failure) is dropped and counted.

        Raises:
            WebSocketStateError: the message is not allowed in the current state
                (accepting twice, sending before accept).
            anyio.ClosedResourceError: a frame after the consumer's own close.
            WebSocketDisconnect: a frame after the client left.
        """
        kind = message["type"]
        if kind == "websocket.send":
            if self._state.state is not WebSocketState.OPEN:
                return self._not_sendable()
        elif kind == "websocket.accept":
            self._state.accept()
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            if not self._state.close(1000 if code is None else code, message.get("reason") or ""):
                return None
        elif kind == "websocket.http.response.start":
            self._state.deny()
        await self._send(message)
        return None

    def _not_sendable(self) -> None:
        """Drop a frame after the server's close (counted); raise in any other state."""
        if self._state.closed_by_server:
            self._connections.sends_after_close += 1
            logger.debug("dropped a frame sent after the server closed %r", self.scope.get("path"))
            return
        raise self._state.not_open("send")

    @property
    def exchange_over(self) -> bool:
        """Whether this side closed (or denied) the socket."""
        return self._state.state in _ENDED_HERE

    def disconnect_message(self) -> Message:
        """The client's disconnect message, or one carrying the code the socket closed with."""
        end = self._receiver.end_message
        if end is not None:
            return end
        code = 1006 if self._abandoned else self._state.close_code or 1006
        return {"type": "websocket.disconnect", "code": code}

    # -- ending -----------------------------------------------------------------------

    def request_close(self, code: int) -> None:
        """Close with ``code`` from the connection's own task group (server shutdown)."""
        if self._task_group is not None and self._state.state is WebSocketState.OPEN:
            self.start_soon(self._close_for_shutdown, code)
        elif self._state.state is WebSocketState.CONNECTING:
            self.cancel()

    async def _close_for_shutdown(self, code: int) -> None:
        if self._state.close(code, "", by_server=True):
            await self._send({"type": "websocket.close", "code": code, "reason": ""})

    def _settle(self) -> Outcome:
        outcome = super()._settle()
        end = self._receiver.end_message
        if end is not None and not self._state.finished:
            self._record_disconnect(end)
        if outcome.blame is Blame.CLIENT:
            logger.warning("closing WebSocket %r with %d: %s",
                           self.scope.get("path"), outcome.close_code, self._error)  # fmt: skip
        self._farewell = self._farewell_for(outcome)
        return outcome

    def _farewell_for(self, outcome: Outcome) -> list[Message]:
        """Move to the end state now; return the messages that tell the client."""
        state = self._state
        denied = outcome.blame is not Blame.NONE and state.state is WebSocketState.CONNECTING
        if denied and _DENIAL_EXTENSION in (self.scope.get("extensions") or {}):
            state.deny()
            start = {"type": "websocket.http.response.start", "status": outcome.status}
            body = outcome.detail.encode("utf-8")
            return [{**start, "headers": [(b"content-type", b"text/plain; charset=utf-8")]},
                        {"type": "websocket.http.response.body", "body": body}]  # fmt: skip
        if state.close(outcome.close_code, outcome.close_reason, by_server=True):
            code, reason = outcome.close_code, outcome.close_reason
            return [{"type": "websocket.close", "code": code, "reason": reason}]
        return []

    async def _tell_client(self) -> None:
        for message in self._farewell:
            await self._send(message)


def _text(data: str | bytes) -> str:
    if not isinstance(data, str):
        raise InvalidMessage("expected a text frame, got a binary one", close_code=1003)
    return data


def _binary(data: str | bytes) -> bytes:
    if not isinstance(data, bytes):
        raise InvalidMessage("expected a binary frame, got a text one", close_code=1003)
    return data


def _json(data: str | bytes) -> Any:
    text = _text(data)  # a binary frame is 1003, not malformed JSON's 1007
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidMessage(f"malformed JSON in a text frame: {exc}") from exc


def _as_is(data: str | bytes) -> str | bytes:
    return data
